"""autoscaling HorizontalPodAutoscaler: v2 is the stored and preferred form;
the v1 endpoint exists for ``kubectl autoscale`` and converts what it is sent
into the v2 form on write (one object, never two diverging copies)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from corral.resources import validation as v
from corral.resources.schema import Schema
from corral.resources.tables import AGE_COLUMN, NAME_COLUMN, as_dict, as_list, get_path
from corral.resources.types import Column, FieldCause, Obj, ResourceType

DEFAULT_CPU_UTILIZATION = 80
METRIC_TYPES = ("ContainerResource", "External", "Object", "Pods", "Resource")
TARGET_TYPES = ("AverageValue", "Utilization", "Value")


def cpu_metric(percent: int) -> Obj:
    return {"type": "Resource", "resource": {"name": "cpu", "target": {
        "type": "Utilization", "averageUtilization": percent}}}


def default_hpa(obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    spec.setdefault("minReplicas", 1)
    if not spec.get("metrics"):
        spec["metrics"] = [cpu_metric(DEFAULT_CPU_UTILIZATION)]


def convert_v1_to_v2(obj: Obj) -> None:
    """The v1 body as the v2 object it stands for."""
    spec = obj.get("spec")
    if isinstance(spec, dict):
        percent = spec.pop("targetCPUUtilizationPercentage", None)
        if percent is not None and not spec.get("metrics"):
            spec["metrics"] = [cpu_metric(percent)]
    status = obj.get("status")
    if isinstance(status, dict):
        status.pop("currentCPUUtilizationPercentage", None)
    obj["apiVersion"] = "autoscaling/v2"
    default_hpa(obj)


def _validate_target(target: Any, path: str) -> list[FieldCause]:
    if not isinstance(target, dict):
        return [v.required(path)]
    causes = v.one_of(f"{path}.type", target.get("type"), TARGET_TYPES)
    kind = target.get("type")
    if kind == "Utilization":
        if target.get("averageUtilization") is None:
            causes.append(v.required(f"{path}.averageUtilization",
                                     "must set averageUtilization when type is Utilization"))
        else:
            causes += v.positive(f"{path}.averageUtilization", target.get("averageUtilization"))
    elif kind == "AverageValue" and target.get("averageValue") is None:
        causes.append(v.required(f"{path}.averageValue", "must set averageValue when type is AverageValue"))
    elif kind == "Value" and target.get("value") is None:
        causes.append(v.required(f"{path}.value", "must set value when type is Value"))
    return causes


def _validate_metrics(metrics: Any) -> list[FieldCause]:
    causes: list[FieldCause] = []
    for i, metric in enumerate(as_list(metrics)):
        p = f"spec.metrics[{i}]"
        metric = as_dict(metric)
        kind = metric.get("type")
        causes += v.one_of(f"{p}.type", kind, METRIC_TYPES)
        if kind == "Resource":
            resource = metric.get("resource")
            if not isinstance(resource, dict):
                causes.append(v.required(f"{p}.resource", "must populate information for the given metric source"))
                continue
            if not resource.get("name"):
                causes.append(v.required(f"{p}.resource.name", "must specify a resource name"))
            causes += _validate_target(resource.get("target"), f"{p}.resource.target")
    return causes


def validate_hpa(new: Obj, old: Obj | None) -> list[FieldCause]:
    spec = new.get("spec")
    if not isinstance(spec, dict):
        return [v.required("spec")]
    causes: list[FieldCause] = []
    ref = spec.get("scaleTargetRef")
    if not isinstance(ref, dict):
        causes.append(v.required("spec.scaleTargetRef"))
    else:
        if not ref.get("kind"):
            causes.append(v.required("spec.scaleTargetRef.kind"))
        if not ref.get("name"):
            causes.append(v.required("spec.scaleTargetRef.name"))
    low, high = spec.get("minReplicas"), spec.get("maxReplicas")
    if low is not None and (not v.is_int(low) or low < 1):
        causes.append(v.invalid("spec.minReplicas", low, "must be greater than or equal to 1"))
    if high is None:
        causes.append(v.required("spec.maxReplicas"))
    elif not v.is_int(high) or high < 1:
        causes.append(v.invalid("spec.maxReplicas", high, "must be greater than 0"))
    elif v.is_int(low) and high < low:
        causes.append(v.invalid("spec.maxReplicas", high, "must be greater than or equal to `minReplicas`"))
    causes += _validate_metrics(spec.get("metrics"))
    return causes


def validate_hpa_v1(new: Obj, old: Obj | None) -> list[FieldCause]:
    return validate_hpa(new, old)


# --- table ---------------------------------------------------------------------------


def _reference(obj: Obj, now: datetime) -> str:
    ref = as_dict(get_path(obj, "spec", "scaleTargetRef"))
    return f"{ref.get('kind', '')}/{ref.get('name', '')}"


def _current_for(obj: Obj, index: int, metric: Obj) -> Obj:
    current = as_list(get_path(obj, "status", "currentMetrics"))
    if index < len(current):
        return as_dict(current[index])
    return {}


def targets_cell(obj: Obj, now: datetime) -> str:
    parts = []
    for i, metric in enumerate(as_list(get_path(obj, "spec", "metrics"))):
        metric = as_dict(metric)
        if metric.get("type") != "Resource":
            parts.append(f"{metric.get('type', '')}")
            continue
        resource = as_dict(metric.get("resource"))
        target = as_dict(resource.get("target"))
        current = as_dict(as_dict(_current_for(obj, i, metric).get("resource")).get("current"))
        if target.get("type") == "Utilization":
            have = current.get("averageUtilization")
            shown = f"{have}%" if have is not None else "<unknown>"
            parts.append(f"{resource.get('name')}: {shown}/{target.get('averageUtilization')}%")
        else:
            want = target.get("averageValue") or target.get("value")
            have = current.get("averageValue") or current.get("value")
            parts.append(f"{resource.get('name')}: {have if have is not None else '<unknown>'}/{want}")
    return ", ".join(parts) if parts else "<none>"


HPA_COLUMNS = (
    NAME_COLUMN,
    Column("Reference", "string", _reference, "Reference to the scaled object."),
    Column("Targets", "string", targets_cell, "Current and target metric values."),
    Column("MinPods", "string",
           lambda o, n: str(get_path(o, "spec", "minReplicas")) if get_path(o, "spec", "minReplicas")
           is not None else "<unset>", "Lower limit for the number of pods."),
    Column("MaxPods", "integer", lambda o, n: get_path(o, "spec", "maxReplicas") or 0,
           "Upper limit for the number of pods."),
    Column("Replicas", "integer", lambda o, n: get_path(o, "status", "currentReplicas") or 0,
           "Current number of replicas of pods managed by this autoscaler."),
    AGE_COLUMN,
)


def hpa_type(schema: Schema) -> ResourceType:
    return ResourceType(
        group="autoscaling", version="v2", kind="HorizontalPodAutoscaler",
        plural="horizontalpodautoscalers", singular="horizontalpodautoscaler", namespaced=True,
        schema=schema, short_names=("hpa",), categories=("all",), subresources=("status",),
        columns=HPA_COLUMNS, defaulter=default_hpa, validator=validate_hpa, has_status=True,
    )


def hpa_v1_type(schema: Schema) -> ResourceType:
    return ResourceType(
        group="autoscaling", version="v1", kind="HorizontalPodAutoscaler",
        plural="horizontalpodautoscalers", singular="horizontalpodautoscaler", namespaced=True,
        schema=schema, short_names=("hpa",), subresources=("status",),
        columns=HPA_COLUMNS, defaulter=convert_v1_to_v2, validator=validate_hpa_v1, has_status=True,
    )
