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
MAX_YAML_ALIASES = 100
MAX_DEPTH = 100
PROTOBUF = "application/vnd.kubernetes.protobuf"
JSON_TYPES = ("application/json", "")
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml")

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Parser = getattr(yaml, "CParser", None)


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
    _check_depth(value)
    return value


def parse_yaml(body: bytes) -> Any:
    if b"*" in body and b"&" in body:
        aliases = 0
        try:
            for event in yaml.parse(body, Loader=_Loader):
                if isinstance(event, yaml.AliasEvent):
                    aliases += 1
                    if aliases > MAX_YAML_ALIASES:
                        raise BadRequest(f"yaml: document has more than {MAX_YAML_ALIASES} aliases")
        except yaml.YAMLError as exc:
            raise BadRequest(f"error converting YAML to JSON: {exc}") from exc
    try:
        docs = list(yaml.load_all(body, Loader=_Loader))
    except (yaml.YAMLError, RecursionError) as exc:
        raise BadRequest(f"error converting YAML to JSON: {exc}") from exc
    docs = [d for d in docs if d is not None]
    if len(docs) != 1:
        raise BadRequest(f"the request body must hold exactly one YAML document, found {len(docs)}")
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
