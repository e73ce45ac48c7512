"""policy/v1 PodDisruptionBudget: validation and ``kubectl get pdb`` columns."""

from __future__ import annotations

from typing import Any

from corral.resources import validation as v
from corral.resources.apps import _validate_int_or_percent
from corral.resources.schema import Schema
from corral.resources.tables import AGE_COLUMN, NAME_COLUMN, get_path
from corral.resources.types import Column, FieldCause, Obj, ResourceType

EVICTION_POLICIES = ("IfHealthyBudget", "AlwaysAllow")


def validate_pdb(new: Obj, old: Obj | None) -> list[FieldCause]:
    spec = new.get("spec")
    if not isinstance(spec, dict):
        return []
    causes: list[FieldCause] = []
    low, high = spec.get("minAvailable"), spec.get("maxUnavailable")
    if low is not None and high is not None:
        causes.append(v.invalid("spec", spec, "minAvailable and maxUnavailable cannot be both set"))
    if low is not None:
        causes += _validate_int_or_percent("spec.minAvailable", low)
    if high is not None:
        causes += _validate_int_or_percent("spec.maxUnavailable", high)
    if spec.get("selector") is not None:
        causes += v.validate_label_selector(spec.get("selector"), "spec.selector")
    causes += v.one_of("spec.unhealthyPodEvictionPolicy", spec.get("unhealthyPodEvictionPolicy"),
                       EVICTION_POLICIES, need=False)
    return causes


def _or_na(value: Any) -> str:
    return "N/A" if value is None else str(value)


PDB_COLUMNS = (
    NAME_COLUMN,
    Column("Min Available", "string", lambda o, n: _or_na(get_path(o, "spec", "minAvailable")),
           "The minimum number of pods that must be available."),
    Column("Max Unavailable", "string", lambda o, n: _or_na(get_path(o, "spec", "maxUnavailable")),
           "The maximum number of pods that may be unavailable."),
    Column("Allowed Disruptions", "integer",
           lambda o, n: get_path(o, "status", "disruptionsAllowed") or 0,
           "Calculated number of pods that may be disrupted at this time."),
    AGE_COLUMN,
)


def pdb_type(schema: Schema) -> ResourceType:
    return ResourceType(
        group="policy", version="v1", kind="PodDisruptionBudget", plural="poddisruptionbudgets",
        singular="poddisruptionbudget", namespaced=True, schema=schema, short_names=("pdb",),
        subresources=("status",), columns=PDB_COLUMNS, validator=validate_pdb, has_status=True,
    )
