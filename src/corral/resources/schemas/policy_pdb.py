"""policy/v1 PodDisruptionBudget."""

from __future__ import annotations

from corral.resources.schemas.dsl import (
    arr,
    int64,
    int_or_string,
    integer,
    kind_object,
    map_of,
    obj,
    string,
    time,
)
from corral.resources.schemas.meta import CONDITION, LABEL_SELECTOR, OBJECT_META

POLICY = "io.k8s.api.policy.v1"

POD_DISRUPTION_BUDGET = kind_object(
    f"{POLICY}.PodDisruptionBudget",
    "How many of a set of pods voluntary disruptions (evictions, drains) may take down at once.",
    {
        "spec": obj(
            "Desired budget: minAvailable or maxUnavailable (a number or a percentage).",
            {
                "maxUnavailable": int_or_string(),
                "minAvailable": int_or_string(),
                "selector": LABEL_SELECTOR,
                "unhealthyPodEvictionPolicy": string("IfHealthyBudget (default) or AlwaysAllow.",
                                                     enum=("AlwaysAllow", "IfHealthyBudget")),
            },
            ref=f"{POLICY}.PodDisruptionBudgetSpec",
        ),
        "status": obj(
            "Observed state of the budget.",
            {
                "conditions": arr(CONDITION, "Conditions (DisruptionAllowed).", list_type="map",
                                  keys=("type",), merge_key="type", strategy="merge"),
                "currentHealthy": integer("Healthy pods now."),
                "desiredHealthy": integer("Healthy pods wanted."),
                "disruptedPods": map_of(time(), "Pods evicted but not yet gone, with the eviction time."),
                "disruptionsAllowed": integer("Evictions allowed now."),
                "expectedPods": integer("Pods the budget counts."),
                "observedGeneration": int64("metadata.generation this status reflects."),
            },
            required=("disruptionsAllowed", "currentHealthy", "desiredHealthy", "expectedPods"),
            ref=f"{POLICY}.PodDisruptionBudgetStatus",
        ),
    },
    metadata=OBJECT_META,
)
