"""Field paths and field sets in Kubernetes' structured-merge-diff form.

A field set is a Python ``set`` of paths; a path is a tuple of path-element
strings exactly as they appear in ``managedFields[].fieldsV1``:

* ``f:<name>``  a field of a map,
* ``k:<json>``  an item of a list keyed by fields (``k:{"name":"web"}``),
* ``v:<json>``  a value of a set-like list of scalars,
* ``i:<n>``     a position, only where no key can be built.

Which paths an object "has" follows Kubernetes: scalars, empty maps, nulls
and atomic values are leaves; items of keyed and set lists are members too
(so an owner of a container owns the container itself, ``"."``); maps that
have content are only reached through their children.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from corral.api.errors import BadRequest
from corral.api.patch.lists import apply_semantics, child, is_atomic_map, items
from corral.api.patch.values import MISSING, compact_json, same
from corral.resources.schema import Schema

Path = tuple[str, ...]
FieldSet = set[Path]

ITEM: Any = object()
"""Value recorded for a list item whose content is tracked by child paths."""

KEY_DEFAULTS = {"protocol": "TCP"}
"""Defaults of list-map key fields (Kubernetes' schema defaults them), so a
port applied without ``protocol`` still names the live ``TCP`` item."""

IGNORED_TOP = frozenset({"f:apiVersion", "f:kind"})
IGNORED_META = frozenset({
    "f:name", "f:namespace", "f:creationTimestamp", "f:selfLink", "f:uid",
    "f:generation", "f:managedFields", "f:resourceVersion",
})
"""Fields nobody owns: identity and bookkeeping the server keeps."""


def is_ignored(path: Path) -> bool:
    if path[0] in IGNORED_TOP:
        return True
    return path[0] == "f:metadata" and len(path) > 1 and path[1] in IGNORED_META


def field_values(obj: Any, schema: Schema | None, *, strict: bool = False) -> dict[Path, Any]:
    """Every owned-able path of ``obj`` with its value (``ITEM`` for list items).

    ``strict`` is for an applied configuration: a keyed item without its key
    or a duplicate key is an error there, while stored objects fall back to
    positions rather than fail a write.
    """
    out: dict[Path, Any] = {}
    _walk(obj, schema, (), out, strict)
    return {p: v for p, v in out.items() if not is_ignored(p)}


def is_leaf(value: Any) -> bool:
    """A scalar, a null or an empty map: one path of its own value,
    whatever its schema says."""
    return not isinstance(value, dict | list) or (not value and isinstance(value, dict))


def _walk(value: Any, schema: Schema | None, path: Path, out: dict[Path, Any], strict: bool) -> None:
    if isinstance(value, dict) and not (path and is_atomic_map(schema)):
        for key, sub in value.items():
            here = (*path, "f:" + key)
            # is_leaf, inline: recorded here, without a call and a schema
            # lookup (most of a pod's fields are scalars).
            if not isinstance(sub, dict | list) or not sub and isinstance(sub, dict):
                out[here] = sub
            else:
                _walk(sub, child(schema, key), here, out, strict)
    elif isinstance(value, list) and path:
        _walk_list(value, schema, path, out, strict)
    elif path:
        out[path] = value


def _walk_list(
    value: list[Any], schema: Schema | None, path: Path, out: dict[Path, Any], strict: bool
) -> None:
    semantics = apply_semantics(schema)
    if semantics.kind == "atomic":
        out[path] = value
        return
    for index, item in enumerate(value):
        if semantics.kind == "set":
            pe = "v:" + compact_json(item)
        else:
            pe = item_element(item, semantics.keys, index, path, strict)
        here = (*path, pe)
        if strict and here in out:
            raise BadRequest(f"{path_string(path)}: duplicate entries for key {_key_text(pe)}")
        if semantics.kind == "set":
            out[here] = item
        else:
            out[here] = ITEM
            if isinstance(item, dict):
                _walk(item, items(schema), here, out, strict)


def item_element(item: Any, keys: tuple[str, ...], index: int, path: Path, strict: bool) -> str:
    """The ``k:`` element naming a keyed list item (``i:`` when it has no key)."""
    if isinstance(item, dict):
        key = {k: item.get(k, KEY_DEFAULTS.get(k, MISSING)) for k in keys}
        key = {k: v for k, v in key.items() if v is not MISSING}
        if len(key) == len(keys) or (key and not strict):
            return "k:" + compact_json(key)
    if strict:
        raise BadRequest(
            f"{path_string(path)}: element {index}: associative list with keys "
            f"{list(keys)} has an element that omits key fields"
        )
    return f"i:{index}"


def path_string(path: Iterable[str]) -> str:
    """Kubernetes' printed form, e.g. ``.spec.containers[name="web"].image``."""
    parts = []
    for pe in path:
        kind, body = pe[:2], pe[2:]
        if kind == "f:":
            parts.append("." + body)
        elif kind == "k:":
            parts.append(_key_text(pe))
        elif kind == "v:":
            parts.append(f"[={body}]")
        else:
            parts.append(f"[{body}]")
    return "".join(parts)


def _key_text(pe: str) -> str:
    key = orjson.loads(pe[2:])
    return "[" + ",".join(f"{k}={compact_json(v)}" for k, v in sorted(key.items())) + "]"


def to_fields_v1(paths: Iterable[Path]) -> dict[str, Any]:
    """The FieldsV1 trie: a member with children also carries ``"."``.

    Built in one pass: in sorted order a member comes before its children,
    so a member is a leaf ``{}`` until its first child arrives, which gives
    it its ``"."`` first (a second pass dropping lone dots cost as much as
    the rest of a status write's bookkeeping)."""
    root: dict[str, Any] = {}
    for path in sorted(paths):
        if not path:
            root["."] = {}
            continue
        node = root
        for pe in path[:-1]:
            sub = node.get(pe)
            if sub is None:
                sub = node[pe] = {}
            elif not sub:  # a member so far without children
                sub["."] = {}
            node = sub
        if path[-1] not in node:
            node[path[-1]] = {}
    if list(root) == ["."]:
        return {}
    return root


def from_fields_v1(tree: Any) -> FieldSet:
    out: FieldSet = set()
    _collect(tree, (), out)
    return out


def _collect(node: Any, path: Path, out: FieldSet) -> None:
    if not isinstance(node, dict):
        return
    if not node and path:
        out.add(path)
    for key, sub in node.items():
        if key == ".":
            out.add(path)
        elif isinstance(key, str) and key[:2] in ("f:", "k:", "v:", "i:"):
            _collect(sub, (*path, key), out)


def remove_path(obj: Any, path: Path) -> None:
    """Delete the value at ``path`` from ``obj`` in place, if it is there."""
    parent = obj
    for pe in path[:-1]:
        parent = _step(parent, pe)
        if parent is MISSING:
            return
    last = path[-1]
    if last.startswith("f:") and isinstance(parent, dict):
        parent.pop(last[2:], None)
    elif isinstance(parent, list):
        at = _find(parent, last)
        if at is not None:
            del parent[at]


def _step(node: Any, pe: str) -> Any:
    if pe.startswith("f:"):
        return node.get(pe[2:], MISSING) if isinstance(node, dict) else MISSING
    if isinstance(node, list):
        at = _find(node, pe)
        return MISSING if at is None else node[at]
    return MISSING


def _find(items_: list[Any], pe: str) -> int | None:
    kind, body = pe[:2], pe[2:]
    if kind == "i:":
        index = int(body)
        return index if 0 <= index < len(items_) else None
    try:
        wanted = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    for index, item in enumerate(items_):
        if kind == "v:" and same(item, wanted):
            return index
        if kind == "k:" and isinstance(item, dict) and isinstance(wanted, dict) and all(
            same(item.get(k, KEY_DEFAULTS.get(k)), v) for k, v in wanted.items()
        ):
            return index
    return None
