"""Our :class:`Schema` trees as OpenAPI 3.0 schema objects, the way
Kubernetes publishes them.

Named types (``Schema.ref``) go to ``components.schemas`` once and are used
through ``{"allOf": [{"$ref": ...}]}``, Kubernetes' own form, which kubectl's
``explain`` and its strategic-merge-patch code both follow. The extensions
kubectl reads (``x-kubernetes-patch-merge-key``, ``-patch-strategy``,
``-list-type``, ...) sit on the property that holds the list or map, because
that is where kubectl looks for them.
"""

from __future__ import annotations

from typing import Any

from corral.resources.schema import Schema
from corral.resources.schemas.dsl import QUANTITY_REF

COMPONENTS = "#/components/schemas/"


def ref_to(name: str) -> dict[str, Any]:
    return {"$ref": COMPONENTS + name}


class ComponentSet:
    """The ``components.schemas`` of one document, filled as schemas are used."""

    def __init__(self) -> None:
        self.schemas: dict[str, dict[str, Any]] = {}

    def use(self, schema: Schema) -> dict[str, Any]:
        """The OpenAPI form of a schema at a point of use (a property or an item)."""
        if not schema.ref:
            return self._inline(schema, with_patch=True)
        self.publish(schema)
        out: dict[str, Any] = {"allOf": [ref_to(schema.ref)]}
        if schema.description:
            # kubectl explain lists a field with the description beside its $ref.
            out["description"] = schema.description
        if schema.patch_strategy:
            out["x-kubernetes-patch-strategy"] = schema.patch_strategy
        return out

    def publish(self, schema: Schema, extra: dict[str, Any] | None = None) -> None:
        """Adds a named schema (and everything it refers to) under its name."""
        name = schema.ref
        if name in self.schemas:
            if extra:
                self.schemas[name].update(extra)
            return
        self.schemas[name] = {}  # a placeholder first: named types may recurse
        body = self._inline(schema, with_patch=False)
        if not extra:
            # Every use carries the description already; kubectl explain would
            # print it twice (use, then type) if the component had it too.
            body.pop("description", None)
        if extra:
            body.update(extra)
        self.schemas[name] = body

    def _inline(self, schema: Schema, *, with_patch: bool) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if schema.description:
            out["description"] = schema.description
        if schema.int_or_string:
            _int_or_string(schema, out)
        elif schema.type:
            out["type"] = schema.type
            if schema.format:
                out["format"] = schema.format
        if schema.enum:
            out["enum"] = list(schema.enum)
        if schema.properties:
            out["properties"] = {k: self.use(v) for k, v in sorted(schema.properties.items())}
        if schema.required:
            out["required"] = list(schema.required)
        if schema.items is not None:
            item = self.use(schema.items)
            if schema.items.ref:
                item["default"] = {}
            out["items"] = item
        if schema.additional_properties is not None:
            out["additionalProperties"] = self.use(schema.additional_properties)
        if schema.preserve_unknown:
            out["x-kubernetes-preserve-unknown-fields"] = True
        _extensions(schema, out, with_patch=with_patch)
        return out


def _int_or_string(schema: Schema, out: dict[str, Any]) -> None:
    if schema.ref == QUANTITY_REF:
        out["oneOf"] = [{"type": "string"}, {"type": "number"}]
    else:
        out["format"] = "int-or-string"
        out["oneOf"] = [{"type": "integer"}, {"type": "string"}]
    out["x-kubernetes-int-or-string"] = True


def _extensions(schema: Schema, out: dict[str, Any], *, with_patch: bool) -> None:
    if with_patch and schema.merge_key:
        out["x-kubernetes-patch-merge-key"] = schema.merge_key
    if with_patch and schema.patch_strategy:
        out["x-kubernetes-patch-strategy"] = schema.patch_strategy
    if schema.list_type:
        out["x-kubernetes-list-type"] = schema.list_type
    if schema.list_map_keys:
        out["x-kubernetes-list-map-keys"] = list(schema.list_map_keys)
    if schema.map_type:
        out["x-kubernetes-map-type"] = schema.map_type
