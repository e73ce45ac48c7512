"""What the API server needs to know about one kind.

A :class:`ResourceType` bundles the facts (group, version, names, scope) with
the behaviour the generic REST handlers call: defaulting, validation, the
table columns ``kubectl get`` prints, the fields a field selector may name,
and the schema. The registry (``resources/registry.py``) builds them all
explicitly; nothing registers itself at import time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from corral.resources.schema import Schema

Obj = dict[str, Any]


@dataclass(frozen=True, slots=True)
class FieldCause:
    """One thing wrong with an object, in Kubernetes' StatusCause form."""

    field: str
    """JSON path like ``spec.containers[0].name``."""
    message: str
    reason: str = "FieldValueInvalid"
    """FieldValueInvalid, FieldValueRequired, FieldValueNotSupported,
    FieldValueDuplicate, FieldValueTooLong, FieldValueForbidden, FieldValueTypeInvalid."""

    def as_status_cause(self) -> dict[str, str]:
        return {"reason": self.reason, "message": self.message, "field": self.field}


@dataclass(frozen=True, slots=True)
class Column:
    """One column of the Table that ``kubectl get`` prints."""

    name: str
    type: str  # string, integer, date, number, boolean
    cell: Callable[[Obj, datetime], Any]
    """Value of this column for an object; the datetime is "now" for ages."""
    description: str = ""
    format: str = ""  # "name" for the NAME column
    priority: int = 0  # > 0 shows only with -o wide


Defaulter = Callable[[Obj], None]
"""Fills unset fields in place (a create or an update's new object)."""

Validator = Callable[[Obj, Obj | None], list[FieldCause]]
"""(new object, old object or None on create) → what is wrong. Covers names,
values and immutable fields; unknown fields are checked from the schema."""

UpdatePreparer = Callable[[Obj, Obj], None]
"""(new, old): carries over what a client may leave out of an update and the
server allocated, e.g. a Service's clusterIP. Runs before defaulting."""

FieldSelectors = Callable[[Obj], dict[str, str]]
"""The selectable fields beyond metadata.name / metadata.namespace, e.g.
``{"spec.nodeName": "n1", "status.phase": "Running"}``."""


def _no_defaults(obj: Obj) -> None:
    return None


def _no_causes(obj: Obj, old: Obj | None) -> list[FieldCause]:
    return []


def _nothing_to_carry(new: Obj, old: Obj) -> None:
    return None


def _no_fields(obj: Obj) -> dict[str, str]:
    return {}


@dataclass(frozen=True, slots=True)
class ScaleSpec:
    """Where a kind keeps what the scale subresource reads and writes."""

    replicas_path: tuple[str, ...] = ("spec", "replicas")
    status_replicas_path: tuple[str, ...] = ("status", "replicas")
    selector_path: tuple[str, ...] = ("spec", "selector")


@dataclass(frozen=True, slots=True)
class ResourceType:
    group: str  # "" for the core group
    version: str
    kind: str
    plural: str
    singular: str
    namespaced: bool
    schema: Schema
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    """Any of status, scale, binding, log, exec, eviction, ephemeralcontainers."""
    verbs: tuple[str, ...] = (
        "create", "delete", "deletecollection", "get", "list", "patch", "update", "watch",
    )
    columns: tuple[Column, ...] = ()
    defaulter: Defaulter = _no_defaults
    validator: Validator = _no_causes
    prepare_update: UpdatePreparer = _nothing_to_carry
    field_selectors: FieldSelectors = _no_fields
    scale: ScaleSpec | None = None
    has_status: bool = False
    """When true, the main endpoint ignores changes to .status and the status
    subresource ignores everything but .status (Kubernetes' strategy split)."""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def api_version(self) -> str:
        return self.group_version

    @property
    def storage_prefix(self) -> str:
        """Keys are ``/registry/<group or core>/<plural>/[<namespace>/]<name>``."""
        return f"/registry/{self.group or 'core'}/{self.plural}/"

    def key(self, namespace: str | None, name: str) -> str:
        if self.namespaced:
            return f"{self.storage_prefix}{namespace}/{name}"
        return f"{self.storage_prefix}{name}"

    def prefix(self, namespace: str | None) -> str:
        if self.namespaced and namespace:
            return f"{self.storage_prefix}{namespace}/"
        return self.storage_prefix
