"""v1 ResourceQuota and LimitRange: per-namespace budgets and per-container bounds."""

from __future__ import annotations

from corral.resources.schemas.dsl import CORE, arr, kind_object, obj, resource_list, string, strings
from corral.resources.schemas.meta import OBJECT_META

SCOPE_SELECTOR = obj(
    "Quota scopes as expressions (e.g. PriorityClass In [high]).",
    {"matchExpressions": arr(obj("One scope requirement.", {
        "operator": string("In, NotIn, Exists or DoesNotExist."),
        "scopeName": string("Terminating, NotTerminating, BestEffort, NotBestEffort, PriorityClass, ..."),
        "values": strings(),
    }, ref=f"{CORE}.ScopedResourceSelectorRequirement"))},
    ref=f"{CORE}.ScopeSelector",
    map_type="atomic",
)

RESOURCE_QUOTA = kind_object(
    f"{CORE}.ResourceQuota",
    "A budget for one namespace: object counts and summed requests and limits.",
    {
        "spec": obj("The budget.", {
            "hard": resource_list("Resource name → the most the namespace may use, e.g. pods: 10, requests.cpu: 4."),
            "scopeSelector": SCOPE_SELECTOR,
            "scopes": strings("Which objects the quota counts; empty means all."),
        }, ref=f"{CORE}.ResourceQuotaSpec"),
        "status": obj("What is used now.", {
            "hard": resource_list("The enforced budget."),
            "used": resource_list("The current use."),
        }, ref=f"{CORE}.ResourceQuotaStatus"),
    },
    metadata=OBJECT_META,
)

LIMIT_RANGE_ITEM = obj(
    "Bounds and defaults for one kind of object (Container, Pod or PersistentVolumeClaim).",
    {
        "default": resource_list("Limits given to containers that set none."),
        "defaultRequest": resource_list("Requests given to containers that set none."),
        "max": resource_list("Largest allowed limit."),
        "maxLimitRequestRatio": resource_list("Largest allowed limit / request."),
        "min": resource_list("Smallest allowed request."),
        "type": string("Container, Pod or PersistentVolumeClaim."),
    },
    required=("type",),
    ref=f"{CORE}.LimitRangeItem",
)

LIMIT_RANGE = kind_object(
    f"{CORE}.LimitRange",
    "Per-container and per-pod bounds and defaults in one namespace.",
    {"spec": obj("The limits.", {"limits": arr(LIMIT_RANGE_ITEM, "The bounds, by object type.")},
                 ref=f"{CORE}.LimitRangeSpec", required=("limits",))},
    metadata=OBJECT_META,
)
