"""Server-side apply (``kubectl apply --server-side``).

The applied configuration says which fields its manager wants to own and
with which values. Applying merges it into the live object and then:

* a field another manager owns that this apply would change is a conflict
  (409 listing every one) unless ``force``, which takes the field over;
* a field this manager applied last time and no longer lists is removed,
  unless another manager owns it too; a named field whose whole content
  nobody owns any more goes with it;
* the manager's ``Apply`` entry in ``managedFields`` becomes exactly the set
  of fields it applied.

Lists merge by their server-side apply type (``map`` by key, ``set`` as a
set, ``atomic`` replaced whole); unknown structure is merged like maps with
atomic lists, as Kubernetes deduces for unstructured data.
"""

from __future__ import annotations

from typing import Any

from corral.api.errors import BadRequest, Conflict
from corral.api.patch.fieldpath import (
    FieldSet,
    Path,
    field_values,
    item_element,
    path_string,
    remove_path,
)
from corral.api.patch.lists import ListSemantics, apply_semantics, child, is_atomic_map, items
from corral.api.patch.managed_fields import Manager, decode, store
from corral.api.patch.values import MISSING, compact_json, deep_copy, same
from corral.resources.schema import Schema
from corral.resources.types import FieldCause

BEFORE_FIRST_APPLY = "before-first-apply"


def server_side_apply(
    current: dict[str, Any] | None,
    applied: Any,
    schema: Schema | None,
    *,
    manager: str,
    force: bool,
    now: str,
) -> dict[str, Any]:
    """The object after ``manager`` applies ``applied``; creates it from ``{}``/None."""
    _check_applied(applied)
    live = deep_copy(current) if current else {}
    api_version = applied.get("apiVersion") or live.get("apiVersion", "")
    managers = _live_managers(live, schema, now)
    mine = next((m for m in managers if m.ident == (manager, "Apply", "")), None)
    if mine is None:
        mine = Manager(manager, "Apply", api_version, now)
        managers.append(mine)
    applied_values = field_values(applied, schema, strict=True)
    live_values = field_values(live, schema)
    merged = _merge(deep_copy(live), applied, schema)
    changed = _changed(live_values, field_values(merged, schema), applied_values)
    _take_conflicting(managers, mine, changed, force)
    previous, mine.fields = mine.fields, set(applied_values)
    _prune(merged, previous, managers)
    present = set(field_values(merged, schema))
    for other in managers:
        if other is not mine:
            other.fields &= present
    mine.api_version, mine.time = api_version, now
    store(merged, managers)
    return merged


def _check_applied(applied: Any) -> None:
    if not isinstance(applied, dict):
        raise BadRequest("apply patch must be an object (a YAML or JSON manifest)")
    metadata = applied.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise BadRequest("metadata: must be an object")
    if metadata and metadata.get("managedFields") is not None:
        raise BadRequest("metadata.managedFields must be nil in an apply patch")


def _live_managers(live: dict[str, Any], schema: Schema | None, now: str) -> list[Manager]:
    """Stored managers; an object nobody tracked yet belongs to ``before-first-apply``."""
    entries = (live.get("metadata") or {}).get("managedFields")
    if entries or not live:
        return decode(entries)
    everything = set(field_values(live, schema))
    return [Manager(BEFORE_FIRST_APPLY, "Update", live.get("apiVersion", ""), now, "", everything)]


def _changed(
    live: dict[Path, Any], merged: dict[Path, Any], applied: dict[Path, Any]
) -> FieldSet:
    changed = {p for p, v in merged.items() if p not in live or not same(live[p], v)}
    changed |= {p for p, v in applied.items() if v is None and p in live}
    return changed


def _take_conflicting(
    managers: list[Manager], mine: Manager, changed: FieldSet, force: bool
) -> None:
    conflicts = [
        (other, path)
        for other in managers
        if other is not mine
        for path in sorted(other.fields & changed)
    ]
    if not conflicts:
        return
    if not force:
        raise _conflict_error(conflicts)
    for other, path in conflicts:
        other.fields.discard(path)


def _conflict_error(conflicts: list[tuple[Manager, Path]]) -> Conflict:
    causes = [
        FieldCause(path_string(p), f"conflict with {m.who()}", "FieldManagerConflict")
        for m, p in conflicts
    ]
    if len(conflicts) == 1:
        m, p = conflicts[0]
        return Conflict(
            f"Apply failed with 1 conflict: conflict with {m.who()}: {path_string(p)}",
            causes=causes,
        )
    lines: list[str] = []
    for who in sorted({m.who() for m, _ in conflicts}):
        lines.append(f"conflicts with {who}:")
        lines.extend(f"- {path_string(p)}" for m, p in conflicts if m.who() == who)
    return Conflict(
        f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines), causes=causes
    )


def _prune(obj: dict[str, Any], previous: FieldSet, managers: list[Manager]) -> None:
    """Remove what this manager applied before, stopped applying, and nobody owns."""
    owned_prefixes = {p[:i] for m in managers for p in m.fields for i in range(1, len(p) + 1)}
    for path in sorted(previous, key=len):
        for depth in range(2, len(path) + 1):
            prefix = path[:depth]
            if depth < len(path) and not prefix[-1].startswith("f:"):
                continue
            if prefix not in owned_prefixes:
                remove_path(obj, prefix)
                break
        else:
            if len(path) == 1 and path not in owned_prefixes:
                remove_path(obj, path)


def _merge(live: Any, applied: Any, schema: Schema | None) -> Any:
    """``applied`` merged into ``live`` (a private copy, changed in place)."""
    if isinstance(applied, dict) and not is_atomic_map(schema):
        out = live if isinstance(live, dict) else {}
        for key, value in applied.items():
            if value is None:
                out.pop(key, None)
            else:
                out[key] = _merge(out.get(key, MISSING), value, child(schema, key))
        return out
    if isinstance(applied, list):
        semantics = apply_semantics(schema)
        if semantics.kind != "atomic":
            base = live if isinstance(live, list) else []
            return _merge_list(base, applied, semantics, items(schema))
    return deep_copy(applied)


def _merge_list(
    live: list[Any], applied: list[Any], semantics: ListSemantics, schema: Schema | None
) -> list[Any]:
    """Merge a keyed or set list the way structured-merge-diff orders it.

    Live-only items keep their places; shared and new items follow the
    applied order, a shared item being emitted where the applied list
    reaches it.
    """
    def element(item: Any, index: int) -> str:
        if semantics.kind == "set":
            return "v:" + compact_json(item)
        return item_element(item, semantics.keys, index, (), False)

    left = [element(x, i) for i, x in enumerate(live)]
    right = [element(x, i) for i, x in enumerate(applied)]
    live_by = dict(zip(reversed(left), reversed(live), strict=True))
    applied_by = dict(zip(right, applied, strict=True))
    shared = [pe for pe in right if pe in live_by]
    out: list[Any] = []
    done: set[str] = set()

    def take(pe: str) -> None:
        done.add(pe)
        out.append(_merge(live_by.get(pe, MISSING), applied_by[pe], schema))
        if shared and shared[0] == pe:
            shared.pop(0)

    li = ri = 0
    while li < len(left) or ri < len(right):
        if li < len(left) and ri < len(right):
            if left[li] == right[ri]:
                take(right[ri])
                li, ri = li + 1, ri + 1
                continue
            if left[li] in applied_by and shared and shared[0] != left[li]:
                li += 1
                continue
        if li < len(left) and left[li] not in applied_by:
            out.append(live[li])
            li += 1
        elif li < len(left) and left[li] in done:
            li += 1
        elif ri < len(right):
            if right[ri] not in done:
                take(right[ri])
            ri += 1
        else:
            li += 1
    return out
