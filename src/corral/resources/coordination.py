"""coordination.k8s.io/v1 Lease: node heartbeats and leader election."""

from __future__ import annotations

from corral.resources import validation as v
from corral.resources.schema import Schema
from corral.resources.tables import AGE_COLUMN, NAME_COLUMN, get_path
from corral.resources.types import Column, FieldCause, Obj, ResourceType

STRATEGIES = ("OldestEmulationVersion",)


def validate_lease(new: Obj, old: Obj | None) -> list[FieldCause]:
    spec = new.get("spec") or {}
    if not isinstance(spec, dict):
        return [v.invalid("spec", spec, "must be an object")]
    causes = v.positive("spec.leaseDurationSeconds", spec.get("leaseDurationSeconds"))
    causes += v.non_negative("spec.leaseTransitions", spec.get("leaseTransitions"))
    if spec.get("preferredHolder") and not spec.get("strategy"):
        causes.append(v.forbidden("spec.preferredHolder",
                                  "holderIdentity may only be set if strategy is set"))
    causes += v.one_of("spec.strategy", spec.get("strategy"), STRATEGIES, need=False)
    return causes


COLUMNS = (
    NAME_COLUMN,
    Column("Holder", "string",
           lambda o, n: str(get_path(o, "spec", "holderIdentity", default="")),
           "The holder of the lease."),
    AGE_COLUMN,
)


def lease_type(schema: Schema) -> ResourceType:
    return ResourceType(
        group="coordination.k8s.io", version="v1", kind="Lease", plural="leases",
        singular="lease", namespaced=True, schema=schema, columns=COLUMNS,
        validator=validate_lease,
    )
