"""v1 Namespace: born Active with the ``kubernetes`` finalizer the namespace
controller removes once everything inside is gone."""

from __future__ import annotations

from corral.resources import validation as v
from corral.resources.schema import Schema
from corral.resources.tables import AGE_COLUMN, NAME_COLUMN, as_list, get_path
from corral.resources.types import Column, FieldCause, Obj, ResourceType

PHASES = ("Active", "Terminating")


def default_namespace(obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    if isinstance(spec, dict):
        spec.setdefault("finalizers", ["kubernetes"])
    status = obj.setdefault("status", {})
    if isinstance(status, dict):
        status.setdefault("phase", "Active")


def validate_namespace(new: Obj, old: Obj | None) -> list[FieldCause]:
    causes = v.stricter_name(new.get("metadata"), "label")
    for i, fin in enumerate(as_list(get_path(new, "spec", "finalizers"))):
        path = f"spec.finalizers[{i}]"
        if not isinstance(fin, str) or not fin:
            causes.append(v.required(path))
            continue
        causes += v.check(path, fin, v.qualified_name_errors(fin))
    causes += v.one_of("status.phase", get_path(new, "status", "phase"), PHASES, need=False)
    return causes


COLUMNS = (
    NAME_COLUMN,
    Column("Status", "string", lambda o, n: str(get_path(o, "status", "phase", default="")),
           "The status of the namespace"),
    AGE_COLUMN,
)


def namespace_fields(obj: Obj) -> dict[str, str]:
    return {"status.phase": str(get_path(obj, "status", "phase", default=""))}


def namespace_type(schema: Schema) -> ResourceType:
    return ResourceType(
        group="", version="v1", kind="Namespace", plural="namespaces", singular="namespace",
        namespaced=False, schema=schema, short_names=("ns",), subresources=("status", "finalize"),
        columns=COLUMNS, defaulter=default_namespace, validator=validate_namespace,
        field_selectors=namespace_fields, has_status=True,
    )
