"""The disruption controller: keeps each PodDisruptionBudget's status current.

The eviction subresource trusts ``status.disruptionsAllowed``; this
controller recomputes it from the pods the budget selects: how many are
healthy (Ready and not just evicted), how many must stay healthy
(minAvailable, or the expected count less maxUnavailable, percentages of
the owning controllers' replicas) and so how many may be disrupted now.
"""

from __future__ import annotations

import copy
import logging
import math
from datetime import datetime, timedelta

from corral.client.api import ApiClient
from corral.client.resources import PDBS, PODS, REPLICASETS, STATEFULSETS
from corral.clock import Clock, format_timestamp, parse_timestamp
from corral.controllers.base import Controller
from corral.controllers.informers import SharedInformers, by_namespace
from corral.controllers.objects import (
    Obj,
    controller_ref,
    is_deleting,
    is_pod_ready,
    key_of,
    meta,
    namespace_of,
)
from corral.resources.validation import selector_matches

log = logging.getLogger(__name__)

DISRUPTION_TIMEOUT = 120.0  # seconds an evicted pod still counts as disrupted


def selects(pdb: Obj, pod: Obj) -> bool:
    selector = (pdb.get("spec") or {}).get("selector")
    return isinstance(selector, dict) and selector_matches(selector, meta(pod).get("labels") or {})


def _scaled(value: object, total: int, round_up: bool) -> int:
    if isinstance(value, int):
        return value
    text = str(value)
    if text.endswith("%"):
        exact = int(text[:-1]) * total / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    return int(text)


def budget_status(pdb: Obj, pods: list[Obj], expected: int, now: datetime) -> Obj:
    """The budget's status given the pods it selects and the number of pods
    their controllers want (``expected``)."""
    spec = pdb.get("spec") or {}
    old = pdb.get("status") or {}
    disrupted = {}
    live = {meta(p).get("name") for p in pods if not is_deleting(p)}
    for name, stamp in (old.get("disruptedPods") or {}).items():
        if name in live and (now - parse_timestamp(stamp)).total_seconds() < DISRUPTION_TIMEOUT:
            disrupted[name] = stamp
    healthy = sum(1 for p in pods if is_pod_ready(p) and not is_deleting(p)
                  and meta(p).get("name") not in disrupted)
    if spec.get("maxUnavailable") is not None:
        desired = max(0, expected - _scaled(spec["maxUnavailable"], expected, round_up=True))
    elif spec.get("minAvailable") is not None:
        desired = _scaled(spec["minAvailable"], expected, round_up=True)
    else:
        desired = expected
    allowed = max(0, healthy - desired)
    status: Obj = {
        "observedGeneration": meta(pdb).get("generation", 1),
        "disruptionsAllowed": allowed,
        "currentHealthy": healthy,
        "desiredHealthy": desired,
        "expectedPods": expected,
        "conditions": copy.deepcopy(old.get("conditions") or []),
    }
    if disrupted:
        status["disruptedPods"] = disrupted
    cond = ("True", "SufficientPods", "") if allowed > 0 else ("False", "InsufficientPods", "")
    _set_condition(status, "DisruptionAllowed", *cond, generation=status["observedGeneration"], now=now)
    return status


def _set_condition(status: Obj, type_: str, value: str, reason: str, message: str, *,
                   generation: int, now: datetime) -> None:
    conds = status["conditions"]
    for cond in conds:
        if cond.get("type") == type_:
            if cond.get("status") != value:
                cond["lastTransitionTime"] = format_timestamp(now)
            cond.update(status=value, reason=reason, message=message, observedGeneration=generation)
            return
    conds.append({"type": type_, "status": value, "reason": reason, "message": message,
                  "observedGeneration": generation, "lastTransitionTime": format_timestamp(now)})


class DisruptionController(Controller):
    name = "disruption-controller"

    def __init__(self, client: ApiClient, informers: SharedInformers, *, clock: Clock | None = None,
                 workers: int = 1) -> None:
        super().__init__(clock=clock, workers=workers)
        self.client = client
        self.pdbs = informers.index(PDBS, "namespace", by_namespace)
        self.pods = informers.index(PODS, "namespace", by_namespace)
        self.rses = informers.index(REPLICASETS, "namespace", by_namespace)
        self.stss = informers.index(STATEFULSETS, "namespace", by_namespace)
        self.watches(self.pdbs, self.pods, self.rses, self.stss)
        self.pdbs.add_handler(on_add=self._enqueue, on_update=lambda o, n: self._enqueue(n))
        self.pods.add_handler(on_add=self._pod, on_update=lambda o, n: (self._pod(o), self._pod(n)),
                              on_delete=self._pod)

    def _enqueue(self, pdb: Obj) -> None:
        self.queue.add(key_of(pdb))

    def _pod(self, pod: Obj) -> None:
        for pdb in self.pdbs.cache.by_index("namespace", namespace_of(pod)):
            if selects(pdb, pod):
                self._enqueue(pdb)

    def expected_pods(self, pods: list[Obj]) -> int:
        """Replicas the pods' controllers want; a pod without a scalable
        controller counts as itself."""
        total = 0
        seen: set[str] = set()
        for pod in pods:
            ref = controller_ref(pod)
            kind = (ref or {}).get("kind")
            cache = {"ReplicaSet": self.rses, "StatefulSet": self.stss}.get(kind or "")
            if ref is None or cache is None:
                total += 1
                continue
            if ref.get("uid") in seen:
                continue
            seen.add(ref.get("uid", ""))
            owner = cache.cache.get(f"{namespace_of(pod)}/{ref.get('name')}")
            total += int(((owner or {}).get("spec") or {}).get("replicas", 1)) if owner else 1
        return total

    async def reconcile(self, key: str) -> float | None:
        pdb = self.pdbs.cache.get(key)
        if pdb is None or is_deleting(pdb):
            return None
        pods = [p for p in self.pods.cache.by_index("namespace", namespace_of(pdb))
                if selects(pdb, p) and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]
        now = self.clock.now()
        status = budget_status(pdb, pods, self.expected_pods(pods), now)
        if status != (pdb.get("status") or {}):
            await self.client.replace_status(PDBS, dict(pdb, status=status))
        if status.get("disruptedPods"):
            oldest = min(parse_timestamp(s) for s in status["disruptedPods"].values())
            return max(0.0, (oldest + timedelta(seconds=DISRUPTION_TIMEOUT) - now).total_seconds()) + 1
        return None
