"""How a list in a kind's schema behaves under each patch kind.

Kubernetes tags lists twice: ``patchStrategy``/``patchMergeKey`` drive the
strategic merge patch, ``x-kubernetes-list-type``/``list-map-keys`` drive
server-side apply. Our :class:`Schema` carries both; these helpers read them
in one place so the two patch kinds cannot drift apart in how they fall back.
"""

from __future__ import annotations

from dataclasses import dataclass

from corral.resources.schema import Schema


@dataclass(frozen=True, slots=True)
class ListSemantics:
    kind: str
    """``atomic``, ``set`` or ``map``."""
    keys: tuple[str, ...] = ()


ATOMIC = ListSemantics("atomic")


def strategic_merge_key(schema: Schema | None) -> str:
    """The merge key of a list that strategic merge patches item by item, or ''."""
    if schema is None or "replace" in schema.patch_strategy:
        return ""
    if schema.merge_key:
        return schema.merge_key
    return ""


def strategic_merges_primitives(schema: Schema | None) -> bool:
    """True when a list of scalars is unioned rather than replaced."""
    if schema is None or schema.merge_key:
        return False
    strategy = schema.patch_strategy.split(",")
    return "merge" in strategy


def apply_semantics(schema: Schema | None) -> ListSemantics:
    """Server-side apply list type, falling back to the strategic tags.

    Without a schema (preserve_unknown) lists are atomic, as Kubernetes
    deduces for unstructured data.
    """
    if schema is None:
        return ATOMIC
    if schema.list_type == "map":
        keys = schema.list_map_keys or ((schema.merge_key,) if schema.merge_key else ())
        return ListSemantics("map", keys) if keys else ATOMIC
    if schema.list_type == "set":
        return ListSemantics("set")
    if schema.list_type == "atomic":
        return ATOMIC
    if schema.merge_key:
        return ListSemantics("map", (schema.merge_key,))
    if "merge" in schema.patch_strategy.split(","):
        return ListSemantics("set")
    return ATOMIC


def is_atomic_map(schema: Schema | None) -> bool:
    return schema is not None and schema.map_type == "atomic"


def child(schema: Schema | None, name: str) -> Schema | None:
    """Schema of a map entry; None (anything goes) below preserve_unknown."""
    if schema is None or schema.preserve_unknown and name not in schema.properties:
        return None
    return schema.property(name)


def items(schema: Schema | None) -> Schema | None:
    if schema is None or schema.preserve_unknown:
        return None
    return schema.items
