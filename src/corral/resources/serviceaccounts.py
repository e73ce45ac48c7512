"""v1 ServiceAccount: the identity pods run as (``default`` in every namespace)."""

from __future__ import annotations

from corral.resources import validation as v
from corral.resources.schema import Schema
from corral.resources.tables import AGE_COLUMN, NAME_COLUMN, as_list
from corral.resources.types import Column, FieldCause, Obj, ResourceType


def validate_serviceaccount(new: Obj, old: Obj | None) -> list[FieldCause]:
    causes: list[FieldCause] = []
    for key in ("secrets", "imagePullSecrets"):
        for i, ref in enumerate(as_list(new.get(key))):
            name = ref.get("name") if isinstance(ref, dict) else None
            if name:
                causes += v.check(f"{key}[{i}].name", name, v.dns1123_subdomain_errors(str(name)))
    return causes


COLUMNS = (
    NAME_COLUMN,
    Column("Secrets", "integer", lambda o, n: len(as_list(o.get("secrets"))),
           "Secrets is a list of the secrets in the same namespace that pods running using "
           "this ServiceAccount are allowed to use."),
    AGE_COLUMN,
)


def serviceaccount_type(schema: Schema) -> ResourceType:
    return ResourceType(
        group="", version="v1", kind="ServiceAccount", plural="serviceaccounts",
        singular="serviceaccount", namespaced=True, schema=schema, short_names=("sa",),
        columns=COLUMNS, validator=validate_serviceaccount, subresources=("token",),
    )
