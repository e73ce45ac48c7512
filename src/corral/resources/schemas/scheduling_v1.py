"""scheduling.k8s.io/v1 PriorityClass: a name for a pod priority."""

from __future__ import annotations

from corral.resources.schemas.dsl import boolean, integer, kind_object, string
from corral.resources.schemas.meta import OBJECT_META

PRIORITY_CLASS = kind_object(
    "io.k8s.api.scheduling.v1.PriorityClass",
    "A mapping from a class name to the integer priority pods of that class get.",
    {
        "value": integer("The priority pods of this class receive; higher schedules first and may "
                         "preempt lower. User classes may not exceed 1000000000."),
        "globalDefault": boolean("Whether pods without a priorityClassName get this class. At most one "
                                 "class may be the global default."),
        "description": string("When this class should be used."),
        "preemptionPolicy": string("PreemptLowerPriority (default) or Never: whether pods of this class "
                                   "may evict lower-priority pods.",
                                   enum=("Never", "PreemptLowerPriority")),
    },
    metadata=OBJECT_META,
    required=("value",),
)
