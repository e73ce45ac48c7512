"""apps/v1 kinds: Deployment and ReplicaSet."""

from __future__ import annotations

from corral.resources.schema import Schema
from corral.resources.schemas.dsl import (
    arr,
    boolean,
    int64,
    int_or_string,
    integer,
    kind_object,
    obj,
    string,
    time,
)
from corral.resources.schemas.meta import LABEL_SELECTOR, OBJECT_META
from corral.resources.schemas.pod import POD_TEMPLATE_SPEC

APPS = "io.k8s.api.apps.v1"


def _conditions(kind: str, what: str, extra: dict[str, Schema]) -> Schema:
    condition = obj(
        f"One aspect of a {what}'s state.",
        {
            **extra,
            "lastTransitionTime": time(),
            "message": string("Details of the transition."),
            "reason": string("CamelCase reason, e.g. ProgressDeadlineExceeded."),
            "status": string("True, False or Unknown."),
            "type": string("Condition type."),
        },
        required=("type", "status"),
        ref=f"{APPS}.{kind}",
    )
    return arr(
        condition,
        "Current conditions.",
        list_type="map",
        keys=("type",),
        merge_key="type",
        strategy="merge",
    )


DEPLOYMENT_STRATEGY = Schema(
    type="object",
    description="How old pods are replaced by new ones: RollingUpdate (default) or Recreate.",
    properties={
        "rollingUpdate": obj(
            "Bounds of a rolling update.",
            {
                "maxSurge": int_or_string(),
                "maxUnavailable": int_or_string(),
            },
            ref=f"{APPS}.RollingUpdateDeployment",
        ),
        "type": string("Recreate or RollingUpdate.", enum=("Recreate", "RollingUpdate")),
    },
    ref=f"{APPS}.DeploymentStrategy",
    patch_strategy="retainKeys",
)

DEPLOYMENT_SPEC = obj(
    "Desired state of a deployment: the pod template, how many replicas, how to roll out.",
    {
        "minReadySeconds": integer("Seconds a new pod must be ready to count as available."),
        "paused": boolean("Stop rolling out template changes."),
        "progressDeadlineSeconds": integer("Seconds without progress before the rollout fails."),
        "replicas": integer("Desired number of pods; default 1."),
        "revisionHistoryLimit": integer("Old ReplicaSets kept for rollback; default 10."),
        "selector": LABEL_SELECTOR,
        "strategy": DEPLOYMENT_STRATEGY,
        "template": POD_TEMPLATE_SPEC,
    },
    required=("selector", "template"),
    ref=f"{APPS}.DeploymentSpec",
)

DEPLOYMENT_STATUS = obj(
    "Observed state of a deployment's rollout.",
    {
        "availableReplicas": integer("Pods ready for at least minReadySeconds."),
        "collisionCount": integer("Template hash collisions, used to make new names."),
        "conditions": _conditions("DeploymentCondition", "deployment", {"lastUpdateTime": time()}),
        "observedGeneration": int64("metadata.generation this status reflects."),
        "readyReplicas": integer("Pods with a Ready condition."),
        "replicas": integer("Pods targeted by the deployment (not terminating)."),
        "terminatingReplicas": integer("Pods being terminated."),
        "unavailableReplicas": integer("Pods still needed for 100% availability."),
        "updatedReplicas": integer("Pods with the current template."),
    },
    ref=f"{APPS}.DeploymentStatus",
)

DEPLOYMENT = kind_object(
    f"{APPS}.Deployment",
    "Declarative updates for pods through ReplicaSets.",
    {"spec": DEPLOYMENT_SPEC, "status": DEPLOYMENT_STATUS},
    metadata=OBJECT_META,
)

REPLICA_SET = kind_object(
    f"{APPS}.ReplicaSet",
    "Keeps a number of identical pods running.",
    {
        "spec": obj(
            "Desired state of a ReplicaSet.",
            {
                "minReadySeconds": integer("Seconds a new pod must be ready to be available."),
                "replicas": integer("Desired number of pods; default 1."),
                "selector": LABEL_SELECTOR,
                "template": POD_TEMPLATE_SPEC,
            },
            required=("selector",),
            ref=f"{APPS}.ReplicaSetSpec",
        ),
        "status": obj(
            "Observed state of a ReplicaSet.",
            {
                "availableReplicas": integer("Pods ready for at least minReadySeconds."),
                "conditions": _conditions("ReplicaSetCondition", "ReplicaSet", {}),
                "fullyLabeledReplicas": integer("Pods whose labels match the template's."),
                "observedGeneration": int64("metadata.generation this status reflects."),
                "readyReplicas": integer("Pods with a Ready condition."),
                "replicas": integer("Pods currently owned (not terminating)."),
                "terminatingReplicas": integer("Pods being terminated."),
            },
            required=("replicas",),
            ref=f"{APPS}.ReplicaSetStatus",
        ),
    },
    metadata=OBJECT_META,
)
