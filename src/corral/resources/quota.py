"""v1 ResourceQuota and LimitRange kinds: validation and table columns.
Enforcement is admission (``api/quota.py``)."""

from __future__ import annotations

from typing import Any

from corral.resources import validation as v
from corral.resources.schema import Schema
from corral.resources.tables import AGE_COLUMN, NAME_COLUMN, as_dict, dicts
from corral.resources.types import Column, FieldCause, Obj, ResourceType

LIMIT_TYPES = ("Container", "Pod", "PersistentVolumeClaim")
QUOTA_SCOPES = ("Terminating", "NotTerminating", "BestEffort", "NotBestEffort", "PriorityClass",
                "CrossNamespacePodAffinity")


def _quantities(path: str, value: Any) -> list[FieldCause]:
    if value is None:
        return []
    if not isinstance(value, dict):
        return [v.invalid(path, value, "must be an object")]
    causes: list[FieldCause] = []
    for name, qty in value.items():
        causes += v.quantity(f"{path}[{name}]", qty)
    return causes


def validate_resource_quota(new: Obj, old: Obj | None) -> list[FieldCause]:
    spec = new.get("spec") or {}
    if not isinstance(spec, dict):
        return [v.invalid("spec", spec, "must be an object")]
    causes = _quantities("spec.hard", spec.get("hard"))
    for i, scope in enumerate(spec.get("scopes") or []):
        causes += v.one_of(f"spec.scopes[{i}]", scope, QUOTA_SCOPES)
    status = new.get("status") or {}
    if isinstance(status, dict):
        causes += _quantities("status.hard", status.get("hard")) + _quantities("status.used", status.get("used"))
    return causes


def validate_limit_range(new: Obj, old: Obj | None) -> list[FieldCause]:
    spec = new.get("spec") or {}
    if not isinstance(spec, dict):
        return [v.invalid("spec", spec, "must be an object")]
    causes: list[FieldCause] = []
    for i, item in enumerate(spec.get("limits") or []):
        at = f"spec.limits[{i}]"
        if not isinstance(item, dict):
            causes.append(v.invalid(at, item, "must be an object"))
            continue
        causes += v.one_of(f"{at}.type", item.get("type"), LIMIT_TYPES)
        for key in ("default", "defaultRequest", "max", "min", "maxLimitRequestRatio"):
            causes += _quantities(f"{at}.{key}", item.get(key))
    return causes


def _pairs(o: Obj) -> str:
    hard = as_dict(as_dict(o.get("spec")).get("hard"))
    used = as_dict(as_dict(o.get("status")).get("used"))
    return ", ".join(f"{k}: {used.get(k, '0')}/{hard[k]}" for k in sorted(hard))


QUOTA_COLUMNS = (
    NAME_COLUMN,
    AGE_COLUMN,
    Column("Request", "string", lambda o, n: _pairs(o), "Used / hard for each resource."),
)

LIMIT_COLUMNS = (
    NAME_COLUMN,
    Column("Types", "string", lambda o, n: ",".join(str(i.get("type")) for i in dicts(as_dict(o.get("spec")).get("limits"))),
           "Object types the limits apply to.", priority=1),
    AGE_COLUMN,
)


def resource_quota_type(schema: Schema) -> ResourceType:
    return ResourceType(
        group="", version="v1", kind="ResourceQuota", plural="resourcequotas", singular="resourcequota",
        namespaced=True, schema=schema, short_names=("quota",), subresources=("status",), has_status=True,
        columns=QUOTA_COLUMNS, validator=validate_resource_quota,
    )


def limit_range_type(schema: Schema) -> ResourceType:
    return ResourceType(
        group="", version="v1", kind="LimitRange", plural="limitranges", singular="limitrange",
        namespaced=True, schema=schema, short_names=("limits",), columns=LIMIT_COLUMNS,
        validator=validate_limit_range,
    )
