"""``metadata.managedFields``: which manager owns which fields.

Every write records its manager (``Update`` entries for create, update and
ordinary patches; ``Apply`` entries are written by server-side apply), so a
later apply can tell a field it set from a field someone else set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from corral.api.patch.fielddiff import changed_fields
from corral.api.patch.fieldpath import (
    FieldSet,
    Path,
    field_values,
    from_fields_v1,
    to_fields_v1,
)
from corral.api.patch.values import deep_copy, same
from corral.resources.schema import Schema

MAX_UPDATE_MANAGERS = 10
"""Kubernetes keeps this many Update entries; older ones fold into one."""

ANCIENT_CHANGES = "ancient-changes"

UNREAD: frozenset[Path] = frozenset({("<unread>",)})
"""The fields of a stored entry no path of the write can be in: they are
never decoded, and the entry is stored again as it was (a pod's creator
owns most of it; decoding its trie on every status write cost more than
the rest of the bookkeeping)."""


@dataclass(slots=True)
class Manager:
    manager: str
    operation: str
    api_version: str
    time: str | None
    subresource: str = ""
    fields: FieldSet = field(default_factory=set)
    # The stored entry this manager was decoded from and the fields it held
    # then: an entry nobody's write touched is stored again as it was,
    # instead of re-encoding its trie on every write of the object (a pod's
    # creator owns most of it; each status write re-encoded all of that).
    stored: dict[str, Any] | None = field(default=None, compare=False, repr=False)
    stored_fields: frozenset[Path] = field(default=frozenset(), compare=False, repr=False)

    @property
    def ident(self) -> tuple[str, str, str]:
        return (self.manager, self.operation, self.subresource)

    def who(self) -> str:
        """How Kubernetes names a manager in conflict messages: appliers by
        name only, updaters with the version they wrote (the time is not part
        of a manager's identity, so it is never printed)."""
        text = f'"{self.manager}"'
        if self.subresource:
            text += f' with subresource "{self.subresource}"'
        if self.operation == "Update":
            text += f" using {self.api_version}"
        return text


def decode(entries: Any) -> list[Manager]:
    """Managers from stored ``managedFields``; malformed entries are skipped
    rather than failing every later write of the object."""
    if not isinstance(entries, list):
        return []
    managers = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("manager", ""), str):
            continue
        m = _undecoded(entry)
        m.fields = from_fields_v1(entry.get("fieldsV1", {}))
        m.stored_fields = frozenset(m.fields)
        managers.append(m)
    return managers


def _undecoded(entry: dict[str, Any]) -> Manager:
    """A stored entry as a Manager, its fields not yet read."""
    return Manager(
        manager=entry.get("manager", ""),
        operation=entry.get("operation", "Update"),
        api_version=entry.get("apiVersion", ""),
        time=entry.get("time"),
        subresource=entry.get("subresource", ""),
        stored=entry,
    )


def _entry(m: Manager) -> dict[str, Any]:
    """The stored form of one manager: its decoded entry again when neither
    its identity nor its fields changed since, and its stored trie again
    when only the time or version did (a node's later status writes of
    fields it already owns). Set equality is one C-level comparison;
    re-encoding walks and sorts the whole trie."""
    old = m.stored
    if m.fields is UNREAD and old is not None:
        return old
    same_fields = (old is not None and m.fields == m.stored_fields and old.get("fieldsType") == "FieldsV1"
                   and isinstance(old.get("fieldsV1"), dict))
    if (same_fields and old is not None and old.get("manager") == m.manager
            and old.get("operation") == m.operation and old.get("apiVersion") == m.api_version
            and old.get("time") == m.time and old.get("subresource", "") == m.subresource):
        return deep_copy(old)
    entry: dict[str, Any] = {
        "manager": m.manager,
        "operation": m.operation,
        "apiVersion": m.api_version,
    }
    if m.time:
        entry["time"] = m.time
    entry["fieldsType"] = "FieldsV1"
    entry["fieldsV1"] = deep_copy(old["fieldsV1"]) if same_fields and old is not None else to_fields_v1(m.fields)
    if m.subresource:
        entry["subresource"] = m.subresource
    return entry


def encode(managers: list[Manager]) -> list[dict[str, Any]]:
    """Entries in Kubernetes' order (Apply first, then by time); empty ones dropped."""
    kept = [m for m in managers if m.fields]
    kept.sort(key=lambda m: (m.operation, m.time or "", m.manager, m.api_version, m.subresource))
    return [_entry(m) for m in kept]


def compare(
    old: dict[Path, Any], new: dict[Path, Any]
) -> tuple[FieldSet, FieldSet, FieldSet]:
    """(added, modified, removed) paths between two ``field_values`` results."""
    added = new.keys() - old.keys()
    removed = old.keys() - new.keys()
    modified = {p for p in new.keys() & old.keys() if not same(old[p], new[p])}
    return set(added), modified, set(removed)


def store(obj: dict[str, Any], managers: list[Manager]) -> None:
    metadata = obj.setdefault("metadata", {})
    entries = encode(managers)
    if entries:
        metadata["managedFields"] = entries
    else:
        metadata.pop("managedFields", None)


def update_managed_fields(
    old: dict[str, Any] | None,
    new: dict[str, Any],
    manager: str,
    operation: str,
    api_version: str,
    now: str,
    schema: Schema | None,
    *,
    subresource: str = "",
) -> dict[str, Any]:
    """``new`` with ``managedFields`` recording that ``manager`` made the change.

    As in Kubernetes an update takes the fields it adds or modifies away from
    every other manager and removed fields leave every manager's set. A write
    that changes nothing leaves the entries (and their times) alone. A client
    that sends its own ``managedFields`` (e.g. ``[]`` to reset them) replaces
    the stored ones.

    A write through the ``status`` subresource stores only ``status`` (the
    rest of ``new`` is the current object's again), so only ``status`` is
    compared, and the writer's entry is its own, marked
    ``subresource: status``, as Kubernetes records it.

    ``new`` is not modified; the result shares all but its ``metadata`` map
    with it (a full copy of a pod per write was a tenth of a status write),
    and shares the entries no path of the write touched with ``old``.
    """
    result = dict(new)
    result["metadata"] = dict(new.get("metadata") or {})
    old = old or {}
    added, modified, removed = changed_fields(_compared(old, subresource), _compared(result, subresource), schema)
    taken = added | modified
    touched = taken | removed
    ident = (manager, operation, subresource)
    managers = _base_managers(old, result, touched, ident)
    if touched:
        for other in managers:
            if other.fields is not UNREAD:
                other.fields -= touched
        mine = _find_or_add(managers, manager, operation, api_version, subresource)
        mine.fields = (mine.fields | taken) - removed
        mine.time = now
        mine.api_version = api_version
    store(result, _fold_old_updates(managers))
    return result


def _compared(obj: dict[str, Any], subresource: str) -> dict[str, Any]:
    """The part of an object a write through ``subresource`` can change."""
    if subresource == "status":
        return {"status": obj["status"]} if "status" in obj else {}
    return obj


def created_managed_fields(
    new: dict[str, Any], manager: str, operation: str, api_version: str, now: str, schema: Schema | None,
) -> list[dict[str, Any]] | None:
    """The entries :func:`update_managed_fields` records for a create, without
    copying or diffing: every field of ``new`` belongs to ``manager``. None
    when the client sent entries of its own (the general path handles those)."""
    if (new.get("metadata") or {}).get("managedFields"):
        return None
    fields = set(field_values(new, schema))
    return encode([Manager(manager, operation, api_version, now, fields=fields)])


def _base_managers(
    old: dict[str, Any], new: dict[str, Any], touched: FieldSet, ident: tuple[str, str, str]
) -> list[Manager]:
    """The managers before the write. Entries from the stored object that
    hold none of the ``touched`` paths and are not the writer's own stay
    undecoded (UNREAD); entries a client sent are always decoded in full."""
    old_entries = (old.get("metadata") or {}).get("managedFields")
    new_meta = new.get("metadata") or {}
    if "managedFields" in new_meta and not same(new_meta["managedFields"], old_entries):
        return decode(new_meta["managedFields"])
    if not isinstance(old_entries, list):
        return []
    firsts = {p[0] for p in touched}  # a status write's paths all start f:status: most tries lack it
    managers = []
    for entry in old_entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("manager", ""), str):
            continue
        tree = entry.get("fieldsV1")
        m = _undecoded(entry)
        if (isinstance(tree, dict) and tree and m.ident != ident
                and entry.get("fieldsType") == "FieldsV1"
                and (firsts.isdisjoint(tree) or not any(_holds(tree, p) for p in touched))):
            m.fields = m.stored_fields = UNREAD
        else:
            m.fields = from_fields_v1(tree if tree is not None else {})
            m.stored_fields = frozenset(m.fields)
        managers.append(m)
    return managers


def _holds(tree: dict[str, Any], path: Path) -> bool:
    """Whether a FieldsV1 trie has ``path`` as a member, as
    ``from_fields_v1`` would decode it, looked up without decoding."""
    node: Any = tree
    for pe in path:
        node = node.get(pe) if isinstance(node, dict) else None
        if node is None:
            return False
    return isinstance(node, dict) and (not node or "." in node)


def _read(m: Manager) -> FieldSet:
    if m.fields is UNREAD:
        m.fields = from_fields_v1((m.stored or {}).get("fieldsV1", {}))
        m.stored_fields = frozenset(m.fields)
    return m.fields


def _find_or_add(
    managers: list[Manager], name: str, operation: str, api_version: str, subresource: str = ""
) -> Manager:
    for m in managers:
        if m.ident == (name, operation, subresource):
            return m
    m = Manager(name, operation, api_version, None, subresource)
    managers.append(m)
    return m


def _fold_old_updates(managers: list[Manager]) -> list[Manager]:
    """Keep at most MAX_UPDATE_MANAGERS Update entries, as Kubernetes does."""
    updates = sorted(
        (m for m in managers if m.operation == "Update"), key=lambda m: m.time or ""
    )
    if len(updates) <= MAX_UPDATE_MANAGERS:
        return managers
    old = updates[: len(updates) - MAX_UPDATE_MANAGERS + 1]
    folded = Manager(ANCIENT_CHANGES, "Update", old[-1].api_version, old[-1].time)
    for m in old:
        folded.fields |= _read(m)
    gone = {id(m) for m in old}
    return [m for m in managers if id(m) not in gone] + [folded]
