"""policy/v1 Eviction: the body of pods/eviction, checked against disruption budgets."""

from __future__ import annotations

from corral.resources.schemas.dsl import kind_object
from corral.resources.schemas.meta import DELETE_OPTIONS, OBJECT_META

EVICTION = kind_object(
    "io.k8s.api.policy.v1.Eviction",
    "A request to evict a pod, honouring disruption budgets (the body of pods/eviction).",
    {"deleteOptions": DELETE_OPTIONS},
    metadata=OBJECT_META,
)
