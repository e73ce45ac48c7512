"""apps/v1: Deployment and ReplicaSet."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from corral.resources import validation as v
from corral.resources.podspec import default_pod_template, validate_pod_template
from corral.resources.schema import Schema
from corral.resources.tables import (
    AGE_COLUMN,
    NAME_COLUMN,
    as_int,
    containers_cell,
    get_path,
    images_cell,
    selector_column,
)
from corral.resources.types import Column, FieldCause, Obj, ResourceType, ScaleSpec

STRATEGIES = ("Recreate", "RollingUpdate")
_PERCENT = re.compile(r"[0-9]+%")

# --- defaults ---------------------------------------------------------------------


def default_deployment(obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    spec.setdefault("replicas", 1)
    strategy = spec.setdefault("strategy", {})
    if isinstance(strategy, dict):
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = strategy.setdefault("rollingUpdate", {})
            if isinstance(rolling, dict):
                rolling.setdefault("maxUnavailable", "25%")
                rolling.setdefault("maxSurge", "25%")
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    default_pod_template(spec.get("template"))


def default_replicaset(obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    spec.setdefault("replicas", 1)
    default_pod_template(spec.get("template"))


# --- validation -------------------------------------------------------------------


def _go_selector(selector: Any) -> str:
    """How Kubernetes prints a LabelSelector in an immutability error."""
    if not isinstance(selector, dict):
        return "(*v1.LabelSelector)(nil)"
    labels = selector.get("matchLabels")
    labels_text = v.go_value(labels) if labels else "map[string]string(nil)"
    exprs = selector.get("matchExpressions")
    exprs_text = v.go_value(exprs) if exprs else "[]v1.LabelSelectorRequirement(nil)"
    return f"v1.LabelSelector{{MatchLabels:{labels_text}, MatchExpressions:{exprs_text}}}"


def validate_workload_selector(spec: dict[str, Any]) -> list[FieldCause]:
    """spec.selector present, non-empty, valid, and selecting the template's labels."""
    selector = spec.get("selector")
    if selector is None:
        return [v.required("spec.selector")]
    causes = v.validate_label_selector(selector, "spec.selector")
    if causes or not isinstance(selector, dict):
        return causes
    if v.selector_is_empty(selector):
        return [v.invalid("spec.selector", "{}", "empty selector is invalid for deployment")]
    labels = get_path(spec, "template", "metadata", "labels", default={})
    if isinstance(labels, dict) and not v.selector_matches(selector, labels):
        causes.append(v.invalid("spec.template.metadata.labels", labels,
                                "`selector` does not match template `labels`"))
    return causes


def _validate_int_or_percent(path: str, value: Any) -> list[FieldCause]:
    if isinstance(value, str):
        if not _PERCENT.fullmatch(value):
            return [v.invalid(path, value,
                              "a valid percent string must be a numeric string followed by an "
                              "ending '%' (e.g. '1%',  or '93%', regex used for validation is "
                              "'[0-9]+%')")]
        if int(value[:-1]) > 100:
            return [v.invalid(path, value, "must not be greater than 100%")]
        return []
    return v.non_negative(path, value)


def _is_zero(value: Any) -> bool:
    return value == 0 or value == "0%"


def _validate_strategy(strategy: Any) -> list[FieldCause]:
    if not isinstance(strategy, dict):
        return [v.required("spec.strategy")]
    kind = strategy.get("type")
    causes = v.one_of("spec.strategy.type", kind, STRATEGIES)
    rolling = strategy.get("rollingUpdate")
    if kind == "Recreate" and rolling is not None:
        causes.append(v.forbidden("spec.strategy.rollingUpdate",
                                  "may not be specified when strategy `type` is 'Recreate'"))
    if kind == "RollingUpdate" and isinstance(rolling, dict):
        p = "spec.strategy.rollingUpdate"
        unavailable, surge = rolling.get("maxUnavailable"), rolling.get("maxSurge")
        causes += _validate_int_or_percent(f"{p}.maxUnavailable", unavailable)
        causes += _validate_int_or_percent(f"{p}.maxSurge", surge)
        if _is_zero(unavailable) and _is_zero(surge):
            causes.append(v.invalid(f"{p}.maxUnavailable", unavailable,
                                    "may not be 0 when `maxSurge` is 0"))
    return causes


def _validate_common(new: Obj, old: Obj | None) -> tuple[list[FieldCause], dict[str, Any]]:
    spec = new.get("spec")
    if not isinstance(spec, dict):
        return [v.required("spec")], {}
    causes = v.non_negative("spec.replicas", spec.get("replicas"))
    causes += v.non_negative("spec.minReadySeconds", spec.get("minReadySeconds"))
    causes += validate_workload_selector(spec)
    causes += validate_pod_template(spec.get("template"), "spec.template")
    if old is not None:
        old_selector = get_path(old, "spec", "selector")
        if spec.get("selector") != old_selector:
            causes.append(FieldCause(
                "spec.selector",
                f"Invalid value: {_go_selector(spec.get('selector'))}: field is immutable",
                "FieldValueInvalid"))
    return causes, spec


def validate_deployment(new: Obj, old: Obj | None) -> list[FieldCause]:
    causes, spec = _validate_common(new, old)
    if not spec:
        return causes
    causes += _validate_strategy(spec.get("strategy"))
    causes += v.non_negative("spec.revisionHistoryLimit", spec.get("revisionHistoryLimit"))
    deadline = spec.get("progressDeadlineSeconds")
    causes += v.positive("spec.progressDeadlineSeconds", deadline)
    min_ready = spec.get("minReadySeconds") or 0
    if v.is_int(deadline) and v.is_int(min_ready) and deadline <= min_ready:
        causes.append(v.invalid("spec.progressDeadlineSeconds", deadline,
                                "must be greater than minReadySeconds"))
    return causes


def validate_replicaset(new: Obj, old: Obj | None) -> list[FieldCause]:
    return _validate_common(new, old)[0]


# --- tables and field selectors ---------------------------------------------------

_TEMPLATE = ("spec", "template")


def _deploy_ready(obj: Obj, now: datetime) -> str:
    ready = as_int(get_path(obj, "status", "readyReplicas"))
    return f"{ready}/{as_int(get_path(obj, 'spec', 'replicas'))}"


DEPLOYMENT_COLUMNS = (
    NAME_COLUMN,
    Column("Ready", "string", _deploy_ready, "Number of the pod with ready state"),
    Column("Up-to-date", "integer",
           lambda o, n: as_int(get_path(o, "status", "updatedReplicas")),
           "Total number of non-terminated pods targeted by this deployment that have the "
           "desired template spec."),
    Column("Available", "integer",
           lambda o, n: as_int(get_path(o, "status", "availableReplicas")),
           "Total number of available pods (ready for at least minReadySeconds) targeted by "
           "this deployment."),
    AGE_COLUMN,
    containers_cell(_TEMPLATE),
    images_cell(_TEMPLATE),
    selector_column("Label selector for pods. Existing ReplicaSets whose pods are selected "
                    "by this will be the ones affected by this deployment."),
)

REPLICASET_COLUMNS = (
    NAME_COLUMN,
    Column("Desired", "integer", lambda o, n: as_int(get_path(o, "spec", "replicas")),
           "Replicas is the number of desired replicas."),
    Column("Current", "integer", lambda o, n: as_int(get_path(o, "status", "replicas")),
           "Replicas is the most recently observed number of replicas."),
    Column("Ready", "integer", lambda o, n: as_int(get_path(o, "status", "readyReplicas")),
           "The number of ready replicas for this replica set."),
    AGE_COLUMN,
    containers_cell(_TEMPLATE),
    images_cell(_TEMPLATE),
    selector_column("Selector is a label query over pods that should match the replica count."),
)


def replicaset_fields(obj: Obj) -> dict[str, str]:
    return {"status.replicas": str(as_int(get_path(obj, "status", "replicas")))}


def deployment_type(schema: Schema) -> ResourceType:
    return ResourceType(
        group="apps", version="v1", kind="Deployment", plural="deployments",
        singular="deployment", namespaced=True, schema=schema, short_names=("deploy",),
        categories=("all",), subresources=("status", "scale"), columns=DEPLOYMENT_COLUMNS,
        defaulter=default_deployment, validator=validate_deployment, scale=ScaleSpec(),
        has_status=True,
    )


def replicaset_type(schema: Schema) -> ResourceType:
    return ResourceType(
        group="apps", version="v1", kind="ReplicaSet", plural="replicasets",
        singular="replicaset", namespaced=True, schema=schema, short_names=("rs",),
        categories=("all",), subresources=("status", "scale"), columns=REPLICASET_COLUMNS,
        defaulter=default_replicaset, validator=validate_replicaset,
        field_selectors=replicaset_fields, scale=ScaleSpec(), has_status=True,
    )
