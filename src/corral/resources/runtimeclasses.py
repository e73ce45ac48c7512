"""node.k8s.io/v1 RuntimeClass: names a node runtime a pod can ask for.

Kubernetes' rules: ``handler`` is a required, immutable DNS-1123 label (it is
what the node's runtime is looked up by); ``overhead.podFixed`` holds
non-negative quantities; ``scheduling`` carries a node selector and
tolerations with the pod-spec rules.
"""

from __future__ import annotations

from typing import Any

from corral.resources import validation as v
from corral.resources.podspec import _validate_tolerations
from corral.resources.schema import Schema
from corral.resources.tables import AGE_COLUMN, NAME_COLUMN, get_path
from corral.resources.types import Column, FieldCause, Obj, ResourceType


def validate_runtimeclass(new: Obj, old: Obj | None) -> list[FieldCause]:
    handler = new.get("handler")
    causes = v.check_name("handler", handler, "label")
    if old is not None:
        causes += v.immutable_field("handler", handler, old.get("handler"))
    overhead = new.get("overhead")
    if overhead is not None:
        causes += _validate_overhead(overhead)
    scheduling = new.get("scheduling")
    if scheduling is not None:
        if not isinstance(scheduling, dict):
            return [*causes, v.invalid("scheduling", scheduling, "must be an object")]
        causes += v.validate_labels(scheduling.get("nodeSelector"), "scheduling.nodeSelector")
        causes += _validate_tolerations(scheduling.get("tolerations"), "scheduling.tolerations")
    return causes


def _validate_overhead(overhead: Any) -> list[FieldCause]:
    if not isinstance(overhead, dict):
        return [v.invalid("overhead", overhead, "must be an object")]
    fixed = overhead.get("podFixed") or {}
    if not isinstance(fixed, dict):
        return [v.invalid("overhead.podFixed", fixed, "must be an object")]
    causes: list[FieldCause] = []
    for name, qty in fixed.items():
        causes += v.quantity(f"overhead.podFixed[{name}]", qty)
    return causes


COLUMNS = (
    NAME_COLUMN,
    Column("Handler", "string", lambda o, n: str(get_path(o, "handler", default="")),
           "The node runtime pods of this class run on."),
    AGE_COLUMN,
)


def runtimeclass_type(schema: Schema) -> ResourceType:
    return ResourceType(
        group="node.k8s.io", version="v1", kind="RuntimeClass", plural="runtimeclasses",
        singular="runtimeclass", namespaced=False, schema=schema, columns=COLUMNS,
        validator=validate_runtimeclass,
    )


DEFAULT_RUNTIME_CLASSES = ("process", "docker")
"""Created at server start, each with a handler of its own name."""


def default_runtime_classes() -> list[Obj]:
    return [
        {
            "apiVersion": "node.k8s.io/v1",
            "kind": "RuntimeClass",
            "metadata": {"name": name},
            "handler": name,
        }
        for name in DEFAULT_RUNTIME_CLASSES
    ]
