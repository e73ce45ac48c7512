"""autoscaling/v2 HorizontalPodAutoscaler, and the autoscaling/v1 form that
``kubectl autoscale`` sends (one stored object, two shapes)."""

from __future__ import annotations

from corral.resources.schema import Schema
from corral.resources.schemas.dsl import (
    arr,
    int64,
    integer,
    kind_object,
    obj,
    quantity,
    string,
    time,
)
from corral.resources.schemas.meta import LABEL_SELECTOR, OBJECT_META

V2 = "io.k8s.api.autoscaling.v2"
V1 = "io.k8s.api.autoscaling.v1"


def _target_ref(prefix: str) -> Schema:
    return obj(
        "The scalable object (kind, name, apiVersion) this autoscaler drives.",
        {"apiVersion": string("API version of the target."), "kind": string("Kind of the target."),
         "name": string("Name of the target.")},
        required=("kind", "name"),
        ref=f"{prefix}.CrossVersionObjectReference",
    )


METRIC_TARGET = obj(
    "A target: Utilization (averageUtilization percent), Value or AverageValue.",
    {"averageUtilization": integer("Percent of the pods' requests."),
     "averageValue": quantity(), "type": string("Utilization, Value or AverageValue."),
     "value": quantity()},
    required=("type",),
    ref=f"{V2}.MetricTarget",
)

METRIC_VALUE = obj(
    "A current metric value.",
    {"averageUtilization": integer("Percent of the pods' requests."),
     "averageValue": quantity(), "value": quantity()},
    ref=f"{V2}.MetricValueStatus",
)

METRIC_IDENTIFIER = obj(
    "A metric by name and selector.",
    {"name": string("Metric name."), "selector": LABEL_SELECTOR},
    required=("name",),
    ref=f"{V2}.MetricIdentifier",
)


def _source(kind: str, fields: dict[str, Schema], required: tuple[str, ...]) -> Schema:
    return obj(f"A {kind} metric.", fields, required=required, ref=f"{V2}.{kind}")


METRIC_SPEC = obj(
    "One metric to scale on: Resource (cpu, memory), ContainerResource, Pods, Object, External.",
    {
        "containerResource": _source("ContainerResourceMetricSource",
                                     {"container": string(), "name": string(), "target": METRIC_TARGET},
                                     ("name", "target", "container")),
        "external": _source("ExternalMetricSource", {"metric": METRIC_IDENTIFIER, "target": METRIC_TARGET},
                            ("metric", "target")),
        "object": _source("ObjectMetricSource", {"describedObject": _target_ref(V2),
                                                 "metric": METRIC_IDENTIFIER, "target": METRIC_TARGET},
                          ("describedObject", "target", "metric")),
        "pods": _source("PodsMetricSource", {"metric": METRIC_IDENTIFIER, "target": METRIC_TARGET},
                        ("metric", "target")),
        "resource": _source("ResourceMetricSource", {"name": string("cpu or memory."),
                                                     "target": METRIC_TARGET}, ("name", "target")),
        "type": string("ContainerResource, External, Object, Pods or Resource."),
    },
    required=("type",),
    ref=f"{V2}.MetricSpec",
)

METRIC_STATUS = obj(
    "The current value of one metric.",
    {
        "containerResource": obj("Container resource metric status.",
                                 {"container": string(), "current": METRIC_VALUE, "name": string()},
                                 ref=f"{V2}.ContainerResourceMetricStatus"),
        "external": obj("External metric status.", {"current": METRIC_VALUE, "metric": METRIC_IDENTIFIER},
                        ref=f"{V2}.ExternalMetricStatus"),
        "object": obj("Object metric status.", {"current": METRIC_VALUE, "describedObject": _target_ref(V2),
                                                "metric": METRIC_IDENTIFIER},
                      ref=f"{V2}.ObjectMetricStatus"),
        "pods": obj("Pods metric status.", {"current": METRIC_VALUE, "metric": METRIC_IDENTIFIER},
                    ref=f"{V2}.PodsMetricStatus"),
        "resource": obj("Resource metric status.", {"current": METRIC_VALUE, "name": string()},
                        ref=f"{V2}.ResourceMetricStatus"),
        "type": string("Metric source type."),
    },
    required=("type",),
    ref=f"{V2}.MetricStatus",
)

SCALING_RULES = obj(
    "How fast one direction may scale: policies and a stabilization window.",
    {
        "policies": arr(obj("At most value pods or percent in periodSeconds.",
                            {"periodSeconds": integer(), "type": string("Pods or Percent."),
                             "value": integer()},
                            required=("type", "value", "periodSeconds"),
                            ref=f"{V2}.HPAScalingPolicy"), "Policies."),
        "selectPolicy": string("Max (default), Min or Disabled."),
        "stabilizationWindowSeconds": integer("Look-back window for recommendations."),
        "tolerance": quantity(),
    },
    ref=f"{V2}.HPAScalingRules",
)

HPA_CONDITION = obj(
    "One aspect of the autoscaler's state: AbleToScale, ScalingActive, ScalingLimited.",
    {"lastTransitionTime": time(), "message": string(), "observedGeneration": int64(),
     "reason": string(), "status": string(), "type": string()},
    required=("type", "status"),
    ref=f"{V2}.HorizontalPodAutoscalerCondition",
)

HPA_V2 = kind_object(
    f"{V2}.HorizontalPodAutoscaler",
    "Scales a workload between minReplicas and maxReplicas to keep its metrics at their targets.",
    {
        "spec": obj(
            "Desired behaviour of the autoscaler.",
            {
                "behavior": obj("Scale-up and scale-down rules.",
                                {"scaleDown": SCALING_RULES, "scaleUp": SCALING_RULES},
                                ref=f"{V2}.HorizontalPodAutoscalerBehavior"),
                "maxReplicas": integer("Upper bound."),
                "metrics": arr(METRIC_SPEC, "Metrics to scale on; default 80% CPU."),
                "minReplicas": integer("Lower bound; default 1."),
                "scaleTargetRef": _target_ref(V2),
            },
            required=("scaleTargetRef", "maxReplicas"),
            ref=f"{V2}.HorizontalPodAutoscalerSpec",
        ),
        "status": obj(
            "Observed state of the autoscaler.",
            {
                "conditions": arr(HPA_CONDITION, "Conditions.", list_type="map", keys=("type",),
                                  merge_key="type", strategy="merge"),
                "currentMetrics": arr(METRIC_STATUS, "Last read metric values."),
                "currentReplicas": integer("Replicas last seen."),
                "desiredReplicas": integer("Replicas last computed."),
                "lastScaleTime": time(),
                "observedGeneration": int64("metadata.generation this status reflects."),
            },
            required=("desiredReplicas",),
            ref=f"{V2}.HorizontalPodAutoscalerStatus",
        ),
    },
    metadata=OBJECT_META,
)

HPA_V1 = kind_object(
    f"{V1}.HorizontalPodAutoscaler",
    "The autoscaling/v1 form of an autoscaler: one CPU utilization target.",
    {
        "spec": obj(
            "Desired behaviour of the autoscaler.",
            {
                "maxReplicas": integer("Upper bound."),
                "minReplicas": integer("Lower bound; default 1."),
                "scaleTargetRef": _target_ref(V1),
                "targetCPUUtilizationPercentage": integer("Target average CPU percent of requests."),
            },
            required=("scaleTargetRef", "maxReplicas"),
            ref=f"{V1}.HorizontalPodAutoscalerSpec",
        ),
        "status": obj(
            "Observed state of the autoscaler.",
            {
                "currentCPUUtilizationPercentage": integer("Last read CPU percent."),
                "currentReplicas": integer("Replicas last seen."),
                "desiredReplicas": integer("Replicas last computed."),
                "lastScaleTime": time(),
                "observedGeneration": int64("metadata.generation this status reflects."),
            },
            required=("currentReplicas", "desiredReplicas"),
            ref=f"{V1}.HorizontalPodAutoscalerStatus",
        ),
    },
    metadata=OBJECT_META,
)
