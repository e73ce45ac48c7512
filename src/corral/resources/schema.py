"""A small schema language for our kinds.

One schema per kind drives four things: strict field validation (unknown
fields rejected with their path), the OpenAPI v3 documents kubectl reads for
``apply`` and ``explain``, strategic-merge-patch list semantics (merge keys),
and server-side apply list semantics. Writing it once keeps them agreeing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

SchemaType = Literal["object", "array", "string", "integer", "number", "boolean"]


@dataclass(slots=True)
class Schema:
    type: SchemaType | None = None
    """None with ``int_or_string`` or ``preserve_unknown`` (any JSON value)."""
    description: str = ""
    properties: dict[str, Schema] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    items: Schema | None = None
    additional_properties: Schema | None = None
    """A map (e.g. labels) when set: every value must match this schema."""
    format: str = ""
    enum: tuple[str, ...] = ()
    int_or_string: bool = False
    """Kubernetes' IntOrString (ports, maxSurge) and Quantity (``100m``, ``1Gi``)."""
    preserve_unknown: bool = False
    """Accept any fields below this point (e.g. an embedded RawExtension)."""
    ref: str = ""
    """Name under ``components.schemas`` this is published as (e.g.
    ``io.k8s.api.core.v1.PodSpec``); empty = inline."""
    merge_key: str = ""
    """Strategic merge: list items are merged by this field (containers → name)."""
    patch_strategy: str = ""
    """Strategic merge: ``merge``, ``replace``, ``retainKeys`` or ``merge,retainKeys``."""
    list_type: str = ""
    """Server-side apply: ``atomic``, ``set`` or ``map``."""
    list_map_keys: tuple[str, ...] = ()
    map_type: str = ""
    """Server-side apply: ``atomic`` or ``granular`` for objects."""

    def property(self, name: str) -> Schema | None:
        if name in self.properties:
            return self.properties[name]
        return self.additional_properties

    def at(self, path: list[str | int]) -> Schema | None:
        """The schema of the value at a JSON path, or None if the path leaves it."""
        node: Schema | None = self
        for step in path:
            if node is None:
                return None
            if isinstance(step, int):
                node = node.items
            else:
                node = node.items if node.type == "array" else node.property(step)
        return node
