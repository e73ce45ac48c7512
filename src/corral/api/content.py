"""Request bodies: JSON, YAML and Kubernetes protobuf, into one dict shape.

Bodies are bounded before they are parsed, YAML aliases are counted before
they are expanded (a "billion laughs" document is refused, not built), and
every parse failure is a 400 that says what could not be read.
"""

from __future__ import annotations

from typing import Any

import orjson
import yaml

from corral.api.errors import BadRequest, UnsupportedMediaType

MAX_BODY_BYTES = 3 * 1024 * 1024
MAX_YAML_NODES = 1_000_000
MAX_DEPTH = 100
PROTOBUF = "application/vnd.kubernetes.protobuf"
JSON_TYPES = ("application/json", "")
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml")



class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """Safe YAML without timestamp resolution: like Kubernetes' YAML-to-JSON,
    an unquoted ``2024-01-01T00:00:00Z`` stays a string."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _check_depth(value: Any, limit: int = MAX_DEPTH) -> None:
    stack = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            raise BadRequest(f"request body is nested deeper than {limit} levels")
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)


def parse_json(body: bytes) -> Any:
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the body of the request was in an unknown format: json parse error: {exc}") from exc
    # A value nested deeper than MAX_DEPTH needs more than MAX_DEPTH non-empty
    # containers, each with an opening bracket not directly closed: counting
    # them in C spares walking every ordinary body. (An empty "{}" is a leaf;
    # managedFields hold hundreds. A "{}" cannot straddle a string's edge,
    # so the count stays an upper bound.)
    brackets = body.count(b"{") + body.count(b"[") - body.count(b"{}") - body.count(b"[]")
    if brackets > MAX_DEPTH:
        _check_depth(value)
    return value


def _expanded_size(root: yaml.Node, limit: int) -> int:
    """Nodes the document has once aliases are expanded, computed on the
    composed graph (where an alias is a shared node) without expanding it."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        sizes[key] = 1  # breaks cycles from recursive anchors
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(child) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            total += sum(size(k) + size(v) for k, v in node.value)
        if total > limit:
            raise BadRequest(f"yaml: document expands to more than {limit} nodes through aliases")
        sizes[key] = total
        return total

    return size(root)


def parse_yaml(body: bytes) -> Any:
    """One YAML document; a document whose aliases would expand it past
    MAX_YAML_NODES (a "billion laughs") is refused before it is built."""
    loader = _Loader(body)
    try:
        root = loader.get_single_node()
        if root is None:
            raise BadRequest("the request body is an empty YAML document")
        if b"*" in body:
            _expanded_size(root, MAX_YAML_NODES)
        docs = [loader.construct_document(root)]
    except (yaml.YAMLError, RecursionError) as exc:
        raise BadRequest(f"error converting YAML to JSON: {exc}") from exc
    finally:
        loader.dispose()
    # Round-trip through JSON: YAML can hold dates, sets and non-string keys
    # that Kubernetes objects cannot.
    try:
        value = orjson.loads(orjson.dumps(docs[0], option=orjson.OPT_NON_STR_KEYS))
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise BadRequest(f"error converting YAML to JSON: {exc}") from exc
    _check_depth(value)
    return value


def decode_object(body: bytes, content_type: str | None) -> dict[str, Any]:
    """A create/update body as an object dict."""
    mt = media_type(content_type)
    if not body:
        raise BadRequest("the request body is empty")
    if mt in JSON_TYPES:
        value = parse_json(body)
    elif mt in YAML_TYPES:
        value = parse_yaml(body)
    elif mt == PROTOBUF:
        from corral.api.protobuf.decode import decode_k8s_protobuf

        value = decode_k8s_protobuf(body)
    else:
        raise UnsupportedMediaType(
            f"the body of the request was in an unknown format - accepted media types include: "
            f"application/json, application/yaml, {PROTOBUF}"
        )
    if not isinstance(value, dict):
        raise BadRequest(f"the request body must be an object, not {type(value).__name__}")
    return value
