"""scheduling.k8s.io/v1 PriorityClass and the Priority admission step.

A pod names a class in spec.priorityClassName; admission resolves it to
spec.priority (and spec.preemptionPolicy) when the pod is created, so the
scheduler only ever reads integers. A pod without a class gets the global
default class if one exists, else priority 0. The two system classes
always exist (the server or the scheduler creates them at start).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from corral.api.errors import Forbidden
from corral.resources import validation as v
from corral.resources.schema import Schema
from corral.resources.tables import AGE_COLUMN, NAME_COLUMN, get_path
from corral.resources.types import Column, FieldCause, Obj, ResourceType

HIGHEST_USER_PRIORITY = 1_000_000_000
SYSTEM_CRITICAL = 2 * HIGHEST_USER_PRIORITY
POLICIES = ("Never", "PreemptLowerPriority")
BUILTIN_CLASSES: tuple[Obj, ...] = (
    {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
     "metadata": {"name": "system-node-critical"}, "value": SYSTEM_CRITICAL + 1000,
     "description": "Used for system critical pods that must not be moved from their current node.",
     "preemptionPolicy": "PreemptLowerPriority"},
    {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
     "metadata": {"name": "system-cluster-critical"}, "value": SYSTEM_CRITICAL,
     "description": "Used for system critical pods that must run in the cluster, but can be moved "
                    "to another node if necessary.",
     "preemptionPolicy": "PreemptLowerPriority"},
)
_BUILTIN = {c["metadata"]["name"]: c for c in BUILTIN_CLASSES}


def default_priority_class(obj: Obj) -> None:
    if isinstance(obj, dict):
        obj.setdefault("preemptionPolicy", "PreemptLowerPriority")


def validate_priority_class(new: Obj, old: Obj | None) -> list[FieldCause]:
    name = (new.get("metadata") or {}).get("name") or ""
    value = new.get("value")
    causes: list[FieldCause] = []
    if value is None:
        causes.append(v.required("value"))
    elif not v.is_int(value) or not -2**31 <= value < 2**31:
        causes.append(v.invalid("value", value, "must be a 32-bit integer"))
    builtin = _BUILTIN.get(name)
    if builtin is not None:
        if value != builtin["value"]:
            causes.append(v.forbidden("value", f"the value of {name} is fixed at {builtin['value']}"))
    elif name.startswith("system-"):
        causes.append(v.forbidden("metadata.name",
                                  "priority class names with 'system-' prefix are reserved"))
    elif v.is_int(value) and value > HIGHEST_USER_PRIORITY:
        causes.append(v.forbidden("value", f"maximum allowed value of a user defined priority is "
                                           f"{HIGHEST_USER_PRIORITY}"))
    if not isinstance(new.get("globalDefault", False), bool):
        causes.append(v.invalid("globalDefault", new.get("globalDefault"), "must be a boolean"))
    causes += v.one_of("preemptionPolicy", new.get("preemptionPolicy"), POLICIES, need=False)
    if old is not None:
        if value != old.get("value"):
            causes.append(v.forbidden("value", "may not be changed in an update."))
        if new.get("preemptionPolicy") != old.get("preemptionPolicy"):
            causes.append(v.forbidden("preemptionPolicy", "may not be changed in an update."))
    return causes


COLUMNS = (
    NAME_COLUMN,
    Column("Value", "integer", lambda o, n: get_path(o, "value", default=0),
           "The priority pods of this class receive."),
    Column("Global-Default", "boolean", lambda o, n: bool(get_path(o, "globalDefault", default=False)),
           "Whether pods without a class get this one."),
    AGE_COLUMN,
    Column("PreemptionPolicy", "string", lambda o, n: str(get_path(o, "preemptionPolicy", default="")),
           "Whether pods of this class may preempt lower-priority pods.", priority=1),
)


def priorityclass_type(schema: Schema) -> ResourceType:
    return ResourceType(
        group="scheduling.k8s.io", version="v1", kind="PriorityClass", plural="priorityclasses",
        singular="priorityclass", namespaced=False, schema=schema, short_names=("pc",),
        columns=COLUMNS, defaulter=default_priority_class, validator=validate_priority_class,
    )


ClassLookup = Callable[[str], Awaitable[Obj | None]]
ClassList = Callable[[], Awaitable[list[Obj]]]


async def resolve_pod_priority(pod: Obj, lookup: ClassLookup, list_classes: ClassList) -> None:
    """Kubernetes' Priority admission for a new pod: fill spec.priority and
    spec.preemptionPolicy from its class (or the global default), and refuse
    a pod whose explicit values disagree with its class."""
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        return
    name = spec.get("priorityClassName") or ""
    cls: Obj | None
    if name:
        cls = await lookup(name) or _BUILTIN.get(name)
        if cls is None:
            raise Forbidden(f"pods \"{(pod.get('metadata') or {}).get('name', '')}\" is forbidden: "
                            f"no PriorityClass with name {name} was found", kind="pods")
    else:
        defaults = [c for c in await list_classes() if c.get("globalDefault") is True]
        # Ties (two defaults written in a race) go to the first name, as the store lists them.
        cls = min(defaults, key=lambda c: (c.get("value", 0), c["metadata"]["name"])) if defaults else None
        if cls is not None:
            spec["priorityClassName"] = cls["metadata"]["name"]
    priority = int(cls.get("value", 0)) if cls else 0
    policy = (cls.get("preemptionPolicy") if cls else None) or "PreemptLowerPriority"
    given = spec.get("priority")
    if given is not None and given != priority:
        raise Forbidden(f"the integer value of priority ({given}) must not be provided in pod spec; "
                        f"priority admission controller computed {priority} from the given PriorityClass name",
                        kind="pods")
    given_policy = spec.get("preemptionPolicy")
    if given_policy is not None and given_policy != policy:
        raise Forbidden(f"the string value of PreemptionPolicy ({given_policy}) must not be provided in pod "
                        f"spec; priority admission controller computed {policy} from the given "
                        "PriorityClass name", kind="pods")
    spec["priority"] = priority
    spec["preemptionPolicy"] = policy


async def admit_pod_priority(ctx: Any, pod: Obj, view: Any = None) -> None:
    """The admission hook. ``view`` (an api/admitview.py AdmissionView)
    answers when it can; a class it does not hold, and the set of classes
    while it cannot vouch for it, are read from the server's store."""
    from corral.api.admitview import MISS
    from corral.api.errors import NotFound
    from corral.api.listwatch import Filter, list_objects

    rt = ctx.registry.lookup("scheduling.k8s.io", "v1", "priorityclasses")
    if rt is None:
        return

    async def lookup(name: str) -> Obj | None:
        cached = MISS if view is None else view.get("priorityclasses", "", name)
        if cached is not MISS:
            return cached  # type: ignore[no-any-return]
        try:
            return await ctx.objects.get(rt, None, name)  # type: ignore[no-any-return]
        except NotFound:
            return None

    async def list_classes() -> list[Obj]:
        cached = None if view is None else view.listed("priorityclasses")
        if cached is not None:
            return cached
        page = await list_objects(ctx.store, rt, None, Filter([], []))
        return list(page.items)

    await resolve_pod_priority(pod, lookup, list_classes)


async def check_single_default(ctx: Any, obj: Obj) -> None:
    """Only one class may be the global default."""
    if obj.get("globalDefault") is not True:
        return
    from corral.api.listwatch import Filter, list_objects

    rt = ctx.registry.lookup("scheduling.k8s.io", "v1", "priorityclasses")
    page = await list_objects(ctx.store, rt, None, Filter([], []))
    name = (obj.get("metadata") or {}).get("name")
    for other in page.items:
        if other.get("globalDefault") is True and other["metadata"]["name"] != name:
            raise Forbidden(f"PriorityClass {other['metadata']['name']} is already marked as default. "
                            "Only one default can exist", kind="priorityclasses")
