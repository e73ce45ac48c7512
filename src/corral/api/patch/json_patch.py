"""JSON Patch (RFC 6902) with JSON Pointers (RFC 6901).

Operations apply in order to a private copy; the first failing operation
fails the whole patch, so a caller never sees a half-applied document.
Malformed operations are a 400; operations that are well formed but cannot
apply to this document (a missing path, a failed ``test``) are a 422 naming
the operation's index and path, as Kubernetes reports them.
"""

from __future__ import annotations

from typing import Any

from corral.api.errors import BadRequest, Invalid, RequestEntityTooLarge
from corral.api.patch.values import MISSING, deep_copy, same

MAX_OPERATIONS = 10000
"""Kubernetes' cap on operations in one JSON patch."""

_OPS = ("add", "remove", "replace", "move", "copy", "test")


class _CannotApply(Exception):
    """An operation that cannot apply; carries the reason without the op context."""


def parse_pointer(pointer: Any) -> list[str]:
    """Split a JSON Pointer into unescaped reference tokens."""
    if not isinstance(pointer, str):
        raise BadRequest(f"JSON pointer must be a string, got {pointer!r}")
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise BadRequest(f'JSON pointer "{pointer}" must start with "/"')
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/")]


def apply_json_patch(doc: Any, operations: Any) -> Any:
    """The document after all operations; ``doc`` itself is left untouched."""
    if not isinstance(operations, list):
        raise BadRequest("json patch must be a JSON array of operations")
    if len(operations) > MAX_OPERATIONS:
        raise RequestEntityTooLarge(
            f"The allowed maximum operations in a JSON patch is {MAX_OPERATIONS}, "
            f"got {len(operations)}"
        )
    result = deep_copy(doc)
    for index, op in enumerate(operations):
        name, path, args = _parse_operation(index, op)
        try:
            result = _apply_one(result, name, path, args)
        except _CannotApply as exc:
            raise Invalid(
                f'json patch operation {index} ({name} "{op["path"]}") failed: {exc}'
            ) from None
    return result


def _parse_operation(index: int, op: Any) -> tuple[str, list[str], dict[str, Any]]:
    if not isinstance(op, dict):
        raise BadRequest(f"json patch operation {index} must be an object, got {op!r}")
    name = op.get("op")
    if name not in _OPS:
        raise BadRequest(f"json patch operation {index}: unknown op {name!r}")
    if "path" not in op:
        raise BadRequest(f'json patch operation {index} ({name}): missing "path"')
    path = parse_pointer(op["path"])
    args: dict[str, Any] = {}
    if name in ("add", "replace", "test"):
        if "value" not in op:
            raise BadRequest(f'json patch operation {index} ({name}): missing "value"')
        args["value"] = op["value"]
    if name in ("move", "copy"):
        if "from" not in op:
            raise BadRequest(f'json patch operation {index} ({name}): missing "from"')
        args["from"] = parse_pointer(op["from"])
    return name, path, args


def _apply_one(doc: Any, name: str, path: list[str], args: dict[str, Any]) -> Any:
    if name == "add":
        return _add(doc, path, deep_copy(args["value"]))
    if name == "remove":
        _remove(doc, path)
        return doc
    if name == "replace":
        _get(doc, path)
        if not path:
            return deep_copy(args["value"])
        _remove(doc, path)
        return _add(doc, path, deep_copy(args["value"]))
    if name == "test":
        if not same(_get(doc, path), args["value"]):
            raise _CannotApply("testing value failed: value differs")
        return doc
    source = args["from"]
    value = _get(doc, source)
    if name == "move":
        if path[: len(source)] == source and path != source:
            raise _CannotApply("cannot move a value into one of its own children")
        _remove(doc, source)
    return _add(doc, path, deep_copy(value))


def _get(doc: Any, path: list[str]) -> Any:
    node = doc
    for i, token in enumerate(path):
        node = _step(node, token, path[: i + 1])
    return node


def _step(node: Any, token: str, where: list[str]) -> Any:
    if isinstance(node, dict):
        if token not in node:
            raise _CannotApply(f'path "{_pointer(where)}" does not exist')
        return node[token]
    if isinstance(node, list):
        return node[_index(node, token, where, allow_end=False)]
    raise _CannotApply(f'path "{_pointer(where[:-1])}" is not an object or array')


def _index(node: list[Any], token: str, where: list[str], *, allow_end: bool) -> int:
    if token == "-" and allow_end:
        return len(node)
    if not token.isdigit() or (token.startswith("0") and token != "0"):
        raise _CannotApply(f'"{token}" at "{_pointer(where)}" is not a valid array index')
    idx = int(token)
    limit = len(node) if allow_end else len(node) - 1
    if idx > limit:
        raise _CannotApply(f'array index {idx} at "{_pointer(where)}" is out of bounds')
    return idx


def _add(doc: Any, path: list[str], value: Any) -> Any:
    if not path:
        return value
    parent = _get(doc, path[:-1])
    token = path[-1]
    if isinstance(parent, dict):
        parent[token] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, token, path, allow_end=True), value)
    else:
        raise _CannotApply(f'path "{_pointer(path[:-1])}" is not an object or array')
    return doc


def _remove(doc: Any, path: list[str]) -> None:
    if not path:
        raise _CannotApply("cannot remove the whole document")
    parent = _get(doc, path[:-1])
    token = path[-1]
    if isinstance(parent, dict):
        if parent.pop(token, MISSING) is MISSING:
            raise _CannotApply(f'path "{_pointer(path)}" does not exist')
    elif isinstance(parent, list):
        del parent[_index(parent, token, path, allow_end=False)]
    else:
        raise _CannotApply(f'path "{_pointer(path[:-1])}" is not an object or array')


def _pointer(path: list[str]) -> str:
    return "".join("/" + t.replace("~", "~0").replace("/", "~1") for t in path)
