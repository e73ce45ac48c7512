"""Which field paths a write changed, without walking what it did not touch.

Recording managedFields on every write needs the (added, modified, removed)
paths between the stored object and the new one. Walking both whole objects
made that the most expensive step of a pod status update (a pod's spec is
large and a status write never changes it). Here equal subtrees are skipped
with one C-level comparison, and only differing maps are descended into;
the result is exactly what comparing the two full walks gives (a property
test holds it to that).
"""

from __future__ import annotations

from typing import Any

from corral.api.patch.fieldpath import (
    ITEM,
    FieldSet,
    Path,
    _walk,
    is_ignored,
    is_leaf,
    item_element,
)
from corral.api.patch.lists import apply_semantics, child, is_atomic_map, items
from corral.api.patch.values import MISSING, same
from corral.resources.schema import Schema


def _entry(value: Any, schema: Schema | None, here: Path) -> dict[Path, Any]:
    """The paths one map entry contributes, as ``fieldpath._walk`` records them."""
    out: dict[Path, Any] = {}
    if value is MISSING:
        return out
    if value is None or (isinstance(value, dict) and not value):
        out[here] = value
    else:
        _walk(value, schema, here, out, False)
    return out


def _compare_into(old: dict[Path, Any], new: dict[Path, Any], sets: tuple[FieldSet, FieldSet, FieldSet]) -> None:
    added, modified, removed = sets
    added.update(new.keys() - old.keys())
    removed.update(old.keys() - new.keys())
    modified.update(p for p in new.keys() & old.keys() if not same(old[p], new[p]))


def _diff(old: Any, new: Any, schema: Schema | None, path: Path, sets: tuple[FieldSet, FieldSet, FieldSet]) -> None:
    if not (isinstance(old, dict) and isinstance(new, dict)) or (path and is_atomic_map(schema)):
        o: dict[Path, Any] = {}
        n: dict[Path, Any] = {}
        _walk(old, schema, path, o, False)
        _walk(new, schema, path, n, False)
        _compare_into(o, n, sets)
        return
    added, modified, removed = sets
    for key in old.keys() | new.keys():
        o_val, n_val = old.get(key, MISSING), new.get(key, MISSING)
        here = (*path, "f:" + key)
        # A key on one side only adds or removes all its paths; two
        # different leaves (scalars, nulls, empty maps) are one modified
        # path. Neither needs the two walks and set differences below (a
        # node's first status write is mostly new keys and scalars).
        if o_val is MISSING:
            added.update(_entry(n_val, child(schema, key), here))
            continue
        if n_val is MISSING:
            removed.update(_entry(o_val, child(schema, key), here))
            continue
        if same(o_val, n_val):
            continue
        if is_leaf(o_val) and is_leaf(n_val):
            modified.add(here)
            continue
        sub = child(schema, key)
        if isinstance(o_val, dict) and o_val and isinstance(n_val, dict) and n_val:
            _diff(o_val, n_val, sub, here, sets)
        elif not (isinstance(o_val, list) and isinstance(n_val, list) and _diff_keyed(o_val, n_val, sub, here, sets)):
            _compare_into(_entry(o_val, sub, here), _entry(n_val, sub, here), sets)


def _keyed(value: list[Any], keys: tuple[str, ...], path: Path) -> dict[str, Any] | None:
    """A keyed list's items by their path element; None if two share one
    (the full walk's result for those is left to the full walk)."""
    out: dict[str, Any] = {}
    for index, item in enumerate(value):
        pe = item_element(item, keys, index, path, False)
        if pe in out:
            return None
        out[pe] = item
    return out


def _item_paths(item: Any, schema: Schema | None, here: Path) -> dict[Path, Any]:
    """The paths one keyed-list item contributes, as ``fieldpath._walk_list`` records them."""
    out: dict[Path, Any] = {here: ITEM}
    if isinstance(item, dict):
        _walk(item, schema, here, out, False)
    return out


def _diff_keyed(old: list[Any], new: list[Any], schema: Schema | None, path: Path,
                sets: tuple[FieldSet, FieldSet, FieldSet]) -> bool:
    """Two versions of a keyed list (a pod's conditions, its container
    statuses) compared item by item, an equal item skipped with one
    comparison, as ``_diff`` does for maps. False, having done nothing,
    for any other list, which the full walks compare."""
    semantics = apply_semantics(schema)
    item_schema = items(schema)
    if semantics.kind != "map" or is_atomic_map(item_schema):
        return False
    o_items, n_items = _keyed(old, semantics.keys, path), _keyed(new, semantics.keys, path)
    if o_items is None or n_items is None:
        return False
    added, _modified, removed = sets
    for pe in o_items.keys() | n_items.keys():
        o_item, n_item = o_items.get(pe, MISSING), n_items.get(pe, MISSING)
        here = (*path, pe)
        if o_item is MISSING:
            added.update(_item_paths(n_item, item_schema, here))
        elif n_item is MISSING:
            removed.update(_item_paths(o_item, item_schema, here))
        elif same(o_item, n_item):
            continue
        elif isinstance(o_item, dict) and isinstance(n_item, dict):
            _diff(o_item, n_item, item_schema, here, sets)
        else:
            _compare_into(_item_paths(o_item, item_schema, here), _item_paths(n_item, item_schema, here), sets)
    return True


_MAY_BE_IGNORED = ("apiVersion", "kind", "metadata")
"""The top-level keys under which ``is_ignored`` can hold a path."""


def changed_fields(old: dict[str, Any], new: dict[str, Any], schema: Schema | None) -> tuple[FieldSet, FieldSet, FieldSet]:
    """(added, modified, removed) owned-able paths from ``old`` to ``new``."""
    sets: tuple[FieldSet, FieldSet, FieldSet] = (set(), set(), set())
    _diff(old, new, schema, (), sets)
    if not any(k in old or k in new for k in _MAY_BE_IGNORED):  # a status write's {"status": ...}
        return sets
    return tuple({p for p in s if not is_ignored(p)} for s in sets)  # type: ignore[return-value]
