"""apps/v1 kinds beyond Deployment: DaemonSet, StatefulSet, ControllerRevision.

Field names and list semantics follow k8s.io/api apps/v1; descriptions are ours.
"""

from __future__ import annotations

from corral.resources.schema import Schema
from corral.resources.schemas.dsl import (
    arr,
    free_form,
    int64,
    int_or_string,
    integer,
    kind_object,
    obj,
    string,
    time,
)
from corral.resources.schemas.meta import LABEL_SELECTOR, OBJECT_META, RAW_EXTENSION
from corral.resources.schemas.pod import POD_TEMPLATE_SPEC
from corral.resources.schemas.volume import PVC_SPEC

APPS = "io.k8s.api.apps.v1"


def _conditions(kind: str) -> Schema:
    condition = obj(
        "One aspect of the object's state.",
        {
            "lastTransitionTime": time(),
            "message": string("Details of the transition."),
            "reason": string("CamelCase reason."),
            "status": string("True, False or Unknown."),
            "type": string("Condition type."),
        },
        required=("type", "status"),
        ref=f"{APPS}.{kind}",
    )
    return arr(condition, "Current conditions.", list_type="map", keys=("type",),
               merge_key="type", strategy="merge")


DAEMONSET_UPDATE_STRATEGY = obj(
    "How a DaemonSet replaces its pods: RollingUpdate (default) or OnDelete.",
    {
        "rollingUpdate": obj(
            "Bounds of a rolling update of a DaemonSet.",
            {"maxSurge": int_or_string(), "maxUnavailable": int_or_string()},
            ref=f"{APPS}.RollingUpdateDaemonSet",
        ),
        "type": string("OnDelete or RollingUpdate.", enum=("OnDelete", "RollingUpdate")),
    },
    ref=f"{APPS}.DaemonSetUpdateStrategy",
)

DAEMON_SET = kind_object(
    f"{APPS}.DaemonSet",
    "Runs one copy of a pod on every node that matches its template.",
    {
        "spec": obj(
            "Desired state of a DaemonSet.",
            {
                "minReadySeconds": integer("Seconds a new pod must be ready to be available."),
                "revisionHistoryLimit": integer("Old ControllerRevisions kept; default 10."),
                "selector": LABEL_SELECTOR,
                "template": POD_TEMPLATE_SPEC,
                "updateStrategy": DAEMONSET_UPDATE_STRATEGY,
            },
            required=("selector", "template"),
            ref=f"{APPS}.DaemonSetSpec",
        ),
        "status": obj(
            "Observed state of a DaemonSet.",
            {
                "collisionCount": integer("Hash collisions, used to make new revision names."),
                "conditions": _conditions("DaemonSetCondition"),
                "currentNumberScheduled": integer("Nodes running at least one daemon pod that should."),
                "desiredNumberScheduled": integer("Nodes that should run the daemon pod."),
                "numberAvailable": integer("Nodes whose daemon pod is available."),
                "numberMisscheduled": integer("Nodes running the daemon pod that should not."),
                "numberReady": integer("Nodes whose daemon pod is ready."),
                "numberUnavailable": integer("Nodes whose daemon pod is missing or unavailable."),
                "observedGeneration": int64("metadata.generation this status reflects."),
                "updatedNumberScheduled": integer("Nodes running the updated daemon pod."),
            },
            required=("currentNumberScheduled", "numberMisscheduled", "desiredNumberScheduled",
                      "numberReady"),
            ref=f"{APPS}.DaemonSetStatus",
        ),
    },
    metadata=OBJECT_META,
)

PVC_TEMPLATE = obj(
    "A claim template: each pod of the StatefulSet gets its own claim made from it.",
    {
        "apiVersion": string("v1"),
        "kind": string("PersistentVolumeClaim"),
        "metadata": OBJECT_META,
        "spec": PVC_SPEC,
        "status": free_form("Status of the claim (ignored in a template)."),
    },
    ref="io.k8s.api.core.v1.PersistentVolumeClaim",
)

STATEFUL_SET = kind_object(
    f"{APPS}.StatefulSet",
    "Pods with stable names and ordinals, started, updated and removed in order.",
    {
        "spec": obj(
            "Desired state of a StatefulSet.",
            {
                "minReadySeconds": integer("Seconds a new pod must be ready to be available."),
                "ordinals": obj("Where ordinals start.", {"start": integer("First ordinal; default 0.")},
                                ref=f"{APPS}.StatefulSetOrdinals"),
                "persistentVolumeClaimRetentionPolicy": obj(
                    "What happens to claims when pods are deleted or scaled down.",
                    {"whenDeleted": string("Retain or Delete."),
                     "whenScaled": string("Retain or Delete.")},
                    ref=f"{APPS}.StatefulSetPersistentVolumeClaimRetentionPolicy",
                ),
                "podManagementPolicy": string("OrderedReady (default) or Parallel.",
                                              enum=("OrderedReady", "Parallel")),
                "replicas": integer("Desired number of pods; default 1."),
                "revisionHistoryLimit": integer("Old ControllerRevisions kept; default 10."),
                "selector": LABEL_SELECTOR,
                "serviceName": string("Governing headless service."),
                "template": POD_TEMPLATE_SPEC,
                "updateStrategy": obj(
                    "RollingUpdate (default, with a partition) or OnDelete.",
                    {
                        "rollingUpdate": obj(
                            "Bounds of a StatefulSet rolling update.",
                            {"maxUnavailable": int_or_string(),
                             "partition": integer("Ordinals below this keep the old revision.")},
                            ref=f"{APPS}.RollingUpdateStatefulSetStrategy",
                        ),
                        "type": string("OnDelete or RollingUpdate.",
                                       enum=("OnDelete", "RollingUpdate")),
                    },
                    ref=f"{APPS}.StatefulSetUpdateStrategy",
                ),
                "volumeClaimTemplates": arr(PVC_TEMPLATE, "Claims each pod gets."),
            },
            required=("selector", "template"),
            ref=f"{APPS}.StatefulSetSpec",
        ),
        "status": obj(
            "Observed state of a StatefulSet.",
            {
                "availableReplicas": integer("Pods ready for at least minReadySeconds."),
                "collisionCount": integer("Hash collisions, used to make new revision names."),
                "conditions": _conditions("StatefulSetCondition"),
                "currentReplicas": integer("Pods at currentRevision."),
                "currentRevision": string("Revision of the pods below the update."),
                "observedGeneration": int64("metadata.generation this status reflects."),
                "readyReplicas": integer("Pods with a Ready condition."),
                "replicas": integer("Pods created."),
                "updateRevision": string("Revision the StatefulSet is rolling to."),
                "updatedReplicas": integer("Pods at updateRevision."),
            },
            required=("replicas",),
            ref=f"{APPS}.StatefulSetStatus",
        ),
    },
    metadata=OBJECT_META,
)

CONTROLLER_REVISION = kind_object(
    f"{APPS}.ControllerRevision",
    "An immutable snapshot of a DaemonSet's or StatefulSet's template, for history and rollback.",
    {
        "data": RAW_EXTENSION,
        "revision": int64("The revision number, increasing per owner."),
    },
    metadata=OBJECT_META,
    required=("revision",),
)
