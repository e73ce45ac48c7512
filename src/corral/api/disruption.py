"""The disruption-budget check of the eviction subresource.

An eviction is a voluntary disruption: it may take a pod down only if the
PodDisruptionBudget covering it currently allows one. As in Kubernetes the
budget's status is the source of truth (written by the disruption
controller); an allowed eviction decrements ``disruptionsAllowed`` and notes
the pod in ``disruptedPods`` with an optimistic write, so two concurrent
evictions cannot both spend the last disruption.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from corral.api.codec import decode
from corral.api.errors import InternalError, TooManyRequests
from corral.clock import format_timestamp
from corral.resources.types import FieldCause
from corral.resources.validation import selector_matches

if TYPE_CHECKING:
    from corral.api.context import ServerContext

Obj = dict[str, Any]

VIOLATION = "Cannot evict pod as it would violate the pod's disruption budget."


def _ready(pod: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def exempt(pod: Obj) -> bool:
    """Pods no budget protects: finished, never started, or already going."""
    phase = (pod.get("status") or {}).get("phase")
    return phase in ("Succeeded", "Failed", "Pending") or bool((pod.get("metadata") or {}).get("deletionTimestamp"))


def covers(pdb: Obj, pod: Obj) -> bool:
    """policy/v1: an empty selector selects every pod, a missing one none."""
    selector = (pdb.get("spec") or {}).get("selector")
    if selector is None:
        return False
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return isinstance(selector, dict) and selector_matches(selector, labels)


def _refuse(message: str) -> TooManyRequests:
    return TooManyRequests(VIOLATION, causes=[FieldCause("", message, "DisruptionBudget")])


def spend(pdb: Obj, pod: Obj, now: str) -> Obj:
    """The budget after this eviction, or TooManyRequests if it may not happen."""
    meta, status = pdb.get("metadata") or {}, pdb.get("status") or {}
    name = meta.get("name", "")
    if int(status.get("observedGeneration") or 0) < int(meta.get("generation") or 1) or "disruptionsAllowed" not in status:
        raise _refuse(f"The disruption budget {name} is still being processed by the server.")
    healthy, desired = int(status.get("currentHealthy") or 0), int(status.get("desiredHealthy") or 0)
    if not _ready(pod):
        policy = (pdb.get("spec") or {}).get("unhealthyPodEvictionPolicy") or "IfHealthyBudget"
        if policy == "AlwaysAllow" or healthy >= desired:
            return pdb  # an unhealthy pod costs the budget nothing
    allowed = int(status.get("disruptionsAllowed") or 0)
    if allowed <= 0:
        raise _refuse(f"The disruption budget {name} needs {desired} healthy pods and has {healthy} currently")
    status = dict(status, disruptionsAllowed=allowed - 1)
    disrupted = dict(status.get("disruptedPods") or {})
    disrupted[(pod.get("metadata") or {}).get("name", "")] = now
    status["disruptedPods"] = disrupted
    return dict(pdb, status=status)


async def check_eviction(ctx: ServerContext, namespace: str, pod: Obj) -> None:
    """Raise TooManyRequests (429) if evicting the pod would break its
    budget; otherwise record the disruption on the budget and return."""
    if exempt(pod):
        return
    rt = ctx.registry.lookup("policy", "v1", "poddisruptionbudgets")
    if rt is None:
        return
    listing = await ctx.store.list(rt.prefix(namespace))
    budgets = [b for b in (decode(kv) for kv in listing.items) if covers(b, pod)]
    if not budgets:
        return
    if len(budgets) > 1:
        raise InternalError("This pod has more than one PodDisruptionBudget, which the eviction "
                            "subresource does not support.")
    name = budgets[0]["metadata"]["name"]
    now = format_timestamp(ctx.clock.now())

    def transform(current: Obj) -> Obj:
        return spend(current, pod, now)

    await ctx.objects.update(rt, namespace, name, transform, subresource="status")
