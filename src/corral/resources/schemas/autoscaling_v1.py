"""autoscaling/v1 Scale: the body of every scale subresource."""

from __future__ import annotations

from corral.resources.schemas.dsl import integer, kind_object, obj, string
from corral.resources.schemas.meta import OBJECT_META

AUTOSCALING = "io.k8s.api.autoscaling.v1"

SCALE = kind_object(
    f"{AUTOSCALING}.Scale",
    "The replica count of a scalable resource (the body of its scale subresource).",
    {
        "spec": obj(
            "Desired scale.",
            {"replicas": integer("Desired number of replicas.")},
            ref=f"{AUTOSCALING}.ScaleSpec",
        ),
        "status": obj(
            "Observed scale.",
            {
                "replicas": integer("Current number of replicas."),
                "selector": string("Label selector of the pods, in query-string form."),
            },
            required=("replicas",),
            ref=f"{AUTOSCALING}.ScaleStatus",
        ),
    },
    metadata=OBJECT_META,
)
