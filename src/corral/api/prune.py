"""Dropping fields the schema does not know, as Kubernetes' decoder does.

Kubernetes decodes into typed structs, so an unknown field never reaches
storage; with ``fieldValidation=Strict`` it is an error, with ``Warn`` (the
default) a warning header. We do the same from our schemas: the returned
paths feed the error or the warning, and what is stored has none of them.
"""

from __future__ import annotations

from typing import Any

from corral.resources.schema import Schema

ALWAYS_ALLOWED_TOP = ("apiVersion", "kind", "metadata")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def prune_unknown(value: Any, schema: Schema | None, path: str = "") -> list[str]:
    """Remove unknown fields from ``value`` in place; return their paths."""
    if schema is None or schema.preserve_unknown or schema.int_or_string:
        return []
    found: list[str] = []
    if isinstance(value, dict) and (schema.type == "object" or schema.properties):
        for key in list(value):
            child = schema.properties.get(key)
            if child is None and schema.additional_properties is not None:
                child = schema.additional_properties
            if child is None:
                if not schema.properties and schema.additional_properties is None:
                    continue  # an object schema with no fields listed accepts anything
                found.append(_join(path, key))
                del value[key]
                continue
            found.extend(prune_unknown(value[key], child, _join(path, key)))
    elif isinstance(value, list) and schema.items is not None:
        for i, item in enumerate(value):
            found.extend(prune_unknown(item, schema.items, f"{path}[{i}]"))
    return found
