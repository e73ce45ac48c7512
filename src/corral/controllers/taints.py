"""Node taints the node lifecycle controller manages, and when a NoExecute
taint evicts a pod (the rules of Kubernetes' taint manager).

Pure functions over dicts, so the rules are unit-tested on hand-made
objects.
"""

from __future__ import annotations

import math
from typing import Any

Obj = dict[str, Any]

UNREACHABLE = "node.kubernetes.io/unreachable"
NOT_READY = "node.kubernetes.io/not-ready"
UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
MANAGED_KEYS = frozenset({UNREACHABLE, NOT_READY, UNSCHEDULABLE})


def taint(key: str, effect: str, time_added: str | None = None) -> Obj:
    out: Obj = {"key": key, "effect": effect}
    if time_added is not None and effect == "NoExecute":
        out["timeAdded"] = time_added
    return out


def with_managed(current: list[Obj], wanted: list[Obj]) -> list[Obj]:
    """``current`` with our taints replaced by ``wanted``; others' taints are
    kept in place, and a wanted taint already present keeps its timeAdded."""
    existing = {(t.get("key"), t.get("effect")): t for t in current}
    out = [t for t in current if t.get("key") not in MANAGED_KEYS]
    for want in wanted:
        have = existing.get((want["key"], want["effect"]))
        out.append(have if have is not None else want)
    return out


def same_taints(a: list[Obj], b: list[Obj]) -> bool:
    def norm(ts: list[Obj]) -> list[tuple[str, str, str]]:
        return sorted((t.get("key") or "", t.get("effect") or "", t.get("value") or "") for t in ts)

    return norm(a) == norm(b)


def noexecute_taints(node: Obj) -> list[Obj]:
    return [t for t in (node.get("spec") or {}).get("taints") or [] if t.get("effect") == "NoExecute"]


def tolerates(tol: Obj, tnt: Obj) -> bool:
    """Kubernetes' ToleratesTaint: an empty effect matches every effect; an
    Exists toleration with no key matches every taint."""
    if tol.get("effect") and tol.get("effect") != tnt.get("effect"):
        return False
    if (tol.get("operator") or "Equal") == "Exists":
        return not tol.get("key") or tol.get("key") == tnt.get("key")
    return tol.get("key") == tnt.get("key") and (tol.get("value") or "") == (tnt.get("value") or "")


def eviction_delay(pod: Obj, taints: list[Obj]) -> float:
    """Seconds a pod may stay on a node with these NoExecute taints: 0 if
    some taint is not tolerated, ``inf`` if every one is tolerated forever,
    else the smallest tolerationSeconds of the tolerations in use."""
    tolerations = [t for t in (pod.get("spec") or {}).get("tolerations") or [] if isinstance(t, dict)]
    delay = math.inf
    for tnt in taints:
        matching = [tol for tol in tolerations if tolerates(tol, tnt)]
        if not matching:
            return 0.0
        for tol in matching:
            seconds = tol.get("tolerationSeconds")
            if isinstance(seconds, int | float) and not isinstance(seconds, bool):
                delay = min(delay, max(0.0, float(seconds)))
    return delay
