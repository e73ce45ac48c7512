"""node.k8s.io/v1 RuntimeClass: which runtime a pod runs on."""

from __future__ import annotations

from corral.resources.schemas.dsl import arr, kind_object, obj, resource_list, string, string_map
from corral.resources.schemas.meta import OBJECT_META
from corral.resources.schemas.scheduling import TOLERATION

RUNTIME_CLASS = kind_object(
    "io.k8s.api.node.v1.RuntimeClass",
    "A class of container runtime: pods name it in spec.runtimeClassName and run "
    "on the node runtime its handler names (corral: process or docker).",
    {
        "handler": string(
            "The runtime on the node that runs pods of this class (a DNS label, immutable)."
        ),
        "overhead": obj(
            "Resources a pod of this class uses beyond its containers.",
            {"podFixed": resource_list("Fixed overhead added to every pod of this class.")},
            ref="io.k8s.api.node.v1.Overhead",
        ),
        "scheduling": obj(
            "Where pods of this class may run.",
            {
                "nodeSelector": string_map("Labels a node must have to run this class."),
                "tolerations": arr(TOLERATION, "Tolerations added to pods of this class."),
            },
            ref="io.k8s.api.node.v1.Scheduling",
        ),
    },
    metadata=OBJECT_META,
    required=("handler",),
)
