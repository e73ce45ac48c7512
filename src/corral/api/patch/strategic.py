"""Strategic merge patch, Kubernetes semantics, driven by the kind's schema.

This is what ``kubectl apply`` (client side), ``scale``, ``set image``,
``rollout restart``, ``label``, ``annotate`` and ``cordon`` send. It is a
merge patch that knows which lists are keyed (containers by name, ports by
containerPort, ...) so a patch can change one item without restating the
others, plus directives kubectl computes from the last-applied configuration:

* ``$patch: replace|delete|merge`` in a map or as a list item;
* ``$setElementOrder/<list>``: the order the patched list should have;
* ``$deleteFromPrimitiveList/<list>``: values to drop from a list of scalars;
* ``$retainKeys``: the only keys a map may keep (union types such as
  a Deployment's ``strategy``).

Where the schema says nothing (``preserve_unknown`` or unknown fields) maps
merge and lists are replaced, as Kubernetes treats unstructured objects.
"""

from __future__ import annotations

from typing import Any

from corral.api.errors import BadRequest
from corral.api.patch.lists import (
    child,
    items,
    strategic_merge_key,
    strategic_merges_primitives,
)
from corral.api.patch.values import MISSING, compact_json, deep_copy, same
from corral.resources.schema import Schema

PATCH = "$patch"
RETAIN_KEYS = "$retainKeys"
SET_ORDER = "$setElementOrder/"
DELETE_PRIMITIVES = "$deleteFromPrimitiveList/"


def strategic_merge_patch(
    current: dict[str, Any], patch: Any, schema: Schema | None
) -> dict[str, Any]:
    """``current`` with ``patch`` applied; neither argument is modified."""
    if not isinstance(patch, dict):
        raise BadRequest("strategic merge patch must be a JSON object")
    base = deep_copy(current) if isinstance(current, dict) else {}
    return _merge_map(base, patch, schema, "")


def _is_directive(key: str) -> bool:
    return key in (PATCH, RETAIN_KEYS) or key.startswith((SET_ORDER, DELETE_PRIMITIVES))


def _merge_map(
    original: dict[str, Any], patch: dict[str, Any], schema: Schema | None, path: str
) -> dict[str, Any]:
    """Merge ``patch`` into ``original`` (our private copy, changed in place)."""
    directive = patch.get(PATCH, "merge")
    if directive == "replace":
        return _merge_map({}, {k: v for k, v in patch.items() if k != PATCH}, schema, path)
    if directive == "delete":
        return {}
    if directive != "merge":
        raise BadRequest(f'{path or "."}: unknown $patch directive {directive!r}')
    if RETAIN_KEYS in patch:
        _retain_keys(original, patch[RETAIN_KEYS], path)
    for key, value in patch.items():
        if key.startswith(DELETE_PRIMITIVES):
            _delete_from_primitive_list(original, key[len(DELETE_PRIMITIVES):], value, path)
    for key, value in patch.items():
        if _is_directive(key):
            continue
        if value is None:
            original.pop(key, None)
            continue
        order = _element_order(patch, key, path)
        sub = child(schema, key)
        original[key] = _merge_value(original.get(key, MISSING), value, sub, order, f"{path}.{key}")
    _reorder_unpatched_lists(original, patch, schema, path)
    return original


def _merge_value(
    original: Any, patch: Any, schema: Schema | None, order: list[Any] | None, path: str
) -> Any:
    if isinstance(patch, dict):
        if schema is not None and "replace" in schema.patch_strategy.split(","):
            return _merge_map({}, patch, schema, path)
        base = original if isinstance(original, dict) else {}
        return _merge_map(base, patch, schema, path)
    if isinstance(patch, list):
        base = original if isinstance(original, list) else []
        return _merge_list(base, patch, schema, order, path)
    return patch


def _merge_list(
    original: list[Any], patch: list[Any], schema: Schema | None,
    order: list[Any] | None, path: str,
) -> list[Any]:
    key = strategic_merge_key(schema)
    if key:
        merged, replaced = _merge_keyed(original, patch, key, items(schema), path)
        if replaced:
            return merged
        ordering = order if order is not None else [p for p in patch if PATCH not in p]
        return _normalize_order(merged, ordering, original, key)
    if strategic_merges_primitives(schema):
        replace = [p for p in patch if isinstance(p, dict) and p.get(PATCH) == "replace"]
        values = [deep_copy(p) for p in patch if not isinstance(p, dict) or PATCH not in p]
        if replace:
            return values
        merged = list(original)
        merged.extend(v for v in values if not any(same(v, m) for m in merged))
        return _normalize_order(merged, order if order is not None else values, original, "")
    return deep_copy(patch)


def _merge_keyed(
    original: list[Any], patch: list[Any], key: str, schema: Schema | None, path: str
) -> tuple[list[Any], bool]:
    """Item-by-item merge; the flag says the patch replaced the whole list."""
    result = list(original)
    updates: list[dict[str, Any]] = []
    replace = False
    for item in patch:
        if not isinstance(item, dict):
            raise BadRequest(f"{path}: items must be objects merged by key {key!r}, got {item!r}")
        directive = item.get(PATCH, "merge")
        if directive == "replace":
            replace = True
        elif directive not in ("merge", "delete"):
            raise BadRequest(f"{path}: unknown $patch directive {directive!r}")
        elif key not in item:
            raise BadRequest(f"{path}: item {item!r} does not contain declared merge key {key!r}")
        elif directive == "delete":
            result = [x for x in result if not _has_key(x, key, item[key])]
        else:
            updates.append(item)
    if replace:
        return [_merge_map({}, u, schema, path) for u in updates], True
    for item in updates:
        at = next((i for i, x in enumerate(result) if _has_key(x, key, item[key])), None)
        if at is None:
            result.append(_merge_map({}, item, schema, path))
        else:
            result[at] = _merge_map(result[at], item, schema, path)
    return result, False


def _has_key(item: Any, key: str, value: Any) -> bool:
    return isinstance(item, dict) and key in item and same(item[key], value)


def _retain_keys(original: dict[str, Any], keep: Any, path: str) -> None:
    if not isinstance(keep, list) or not all(isinstance(k, str) for k in keep):
        raise BadRequest(f"{path or '.'}: $retainKeys must be a list of field names")
    for key in [k for k in original if k not in keep]:
        del original[key]


def _delete_from_primitive_list(
    original: dict[str, Any], key: str, values: Any, path: str
) -> None:
    if not isinstance(values, list):
        raise BadRequest(f"{path}.{DELETE_PRIMITIVES}{key}: must be a list of values")
    current = original.get(key)
    if isinstance(current, list):
        original[key] = [v for v in current if not any(same(v, d) for d in values)]


def _element_order(patch: dict[str, Any], key: str, path: str) -> list[Any] | None:
    order = patch.get(SET_ORDER + key)
    if order is not None and not isinstance(order, list):
        raise BadRequest(f"{path}.{SET_ORDER}{key}: must be a list")
    return order


def _reorder_unpatched_lists(
    original: dict[str, Any], patch: dict[str, Any], schema: Schema | None, path: str
) -> None:
    """``$setElementOrder`` for a list the patch does not otherwise touch."""
    for directive in patch:
        if not directive.startswith(SET_ORDER):
            continue
        key = directive[len(SET_ORDER):]
        order = _element_order(patch, key, path)
        current = original.get(key)
        if key in patch or not isinstance(current, list) or order is None:
            continue
        merge_key = strategic_merge_key(child(schema, key))
        original[key] = _normalize_order(current, order, current, merge_key)


def _normalize_order(
    merged: list[Any], order: list[Any], server: list[Any], key: str
) -> list[Any]:
    """Kubernetes' ordering of a merged list.

    Items named in ``order`` (the ``$setElementOrder`` list, else the patch)
    come in that order; items only the server had keep their relative live
    order and are interleaved where they sat relative to patched items that
    were also live.
    """
    def ident(item: Any) -> str:
        if key:
            return compact_json(item.get(key)) if isinstance(item, dict) else compact_json(item)
        return compact_json(item)

    wanted = {ident(o): i for i, o in enumerate(order)}
    live = {}
    for i, item in enumerate(server):
        live.setdefault(ident(item), i)
    patched = sorted((m for m in merged if ident(m) in wanted), key=lambda m: wanted[ident(m)])
    server_only = sorted(
        (m for m in merged if ident(m) not in wanted), key=lambda m: live.get(ident(m), len(live))
    )
    out: list[Any] = []
    i = j = 0
    while i < len(server_only) or j < len(patched):
        if j >= len(patched):
            out.append(server_only[i])
            i += 1
        elif i < len(server_only) and _before(server_only[i], patched[j], live, ident):
            out.append(server_only[i])
            i += 1
        else:
            out.append(patched[j])
            j += 1
    return out


def _before(left: Any, right: Any, live: dict[str, int], ident: Any) -> bool:
    li, ri = live.get(ident(left)), live.get(ident(right))
    return li is not None and ri is not None and li < ri
