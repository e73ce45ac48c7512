"""Preemption: make room for a higher-priority pod by evicting lower ones.

For each node where only resolvable filters refused the pod (resources,
host ports, anti-affinity, spread skew), the victims are found the way
Kubernetes does: take away every lower-priority pod, check that the pod
then fits, and give back as many as possible, those protected by a
PodDisruptionBudget first, then the highest priority first. The node whose
victims hurt least wins: fewest budget violations, then the lowest highest
victim priority, the smallest priority sum, the fewest victims. The choice
is verified by running every filter with the victims removed from the state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from corral.scheduler.framework import Cycle, Diagnosis, Framework
from corral.scheduler.podinfo import PODS, PodClass
from corral.scheduler.selectors import LabelSelector

MAX_CANDIDATES = 100
MAX_VERIFIED = 8


@dataclass
class Budget:
    """A PodDisruptionBudget as preemption reads it."""

    namespace: str
    selector: LabelSelector
    allowed: int


@dataclass
class Victims:
    node: str
    idx: int
    pods: list[tuple[str, PodClass]]
    violations: int

    def rank(self) -> tuple[int, int, int, int]:
        prios = [c.priority for _, c in self.pods]
        return (self.violations, max(prios, default=-(2**31)), sum(prios), len(self.pods))


def _needs(cycle: Cycle) -> dict[int, int]:
    state = cycle.state
    need = dict(state.request_vector(cycle.cls))
    need[state.resources[PODS]] = need.get(state.resources[PODS], 0) + 1
    return need


def _violating(pods: Sequence[tuple[str, PodClass]], budgets: Sequence[Budget]) -> set[str]:
    """Which of these pods would break a budget if all were evicted."""
    left = [b.allowed for b in budgets]
    out = set()
    for key, cls in pods:
        for i, b in enumerate(budgets):
            if b.namespace == cls.namespace and b.selector.matches(cls.labels):
                left[i] -= 1
                if left[i] < 0:
                    out.add(key)
    return out


def victims_on(cycle: Cycle, idx: int, budgets: Sequence[Budget]) -> Victims | None:
    """The fewest, least important lower-priority pods on one node whose
    removal lets the pod's requests fit; None if even all of them do not."""
    state = cycle.state
    lower = [(k, c) for k, c in state.node_pods[idx].items() if c.priority < cycle.cls.priority]
    if not lower:
        return None
    need = _needs(cycle)
    free = {row: int(state.alloc[row, idx] - state.req[row, idx]) for row in need}
    if cycle.extra_req is not None:
        for row in free:
            free[row] -= int(cycle.extra_req[row, idx])

    def holds(cls: PodClass) -> dict[int, int]:
        got = {row: a for row, a in state.request_vector(cls) if row in need}
        got[state.resources[PODS]] = 1
        return got

    for _, c in lower:
        for row, a in holds(c).items():
            free[row] += a
    if any(free[row] < amount for row, amount in need.items()):
        return None
    bad = _violating(lower, budgets)
    # Reprieve budget-protected pods first, then by priority, highest first.
    order = sorted(lower, key=lambda kc: (kc[0] not in bad, -kc[1].priority))
    victims = []
    for key, cls in order:
        h = holds(cls)
        if all(free[row] - h.get(row, 0) >= amount for row, amount in need.items()):
            for row, a in h.items():
                free[row] -= a
        else:
            victims.append((key, cls))
    return Victims(state.names[idx] or "", idx, victims, sum(1 for k, _ in victims if k in bad))


def _fits_without(framework: Framework, cycle: Cycle, v: Victims) -> bool:
    state = cycle.state
    saved = [(k, state.pods[k]) for k, _ in v.pods if k in state.pods]
    for k, _ in saved:
        state.unplace(k)
    try:
        cycle.scratch.clear()
        return bool(framework.feasible(cycle)[v.idx])
    finally:
        for k, placed in saved:
            state.place(k, placed.cls, placed.node, assumed=placed.assumed)
        cycle.scratch.clear()


def select_victims(framework: Framework, cycle: Cycle, diagnosis: Diagnosis,
                   budgets: Sequence[Budget] = ()) -> Victims | None:
    """The node to nominate and the pods to evict there, or None."""
    candidates = diagnosis.resolvable_nodes
    if not len(candidates):
        return None
    state = cycle.state
    # Nodes where lower-priority pods hold the most cpu are the likeliest hosts.
    if len(candidates) > MAX_CANDIDATES:
        used = state.req[state.resources["cpu"], candidates]
        candidates = candidates[np.argsort(-used, kind="stable")[:MAX_CANDIDATES]]
    found = [v for idx in candidates.tolist() if (v := victims_on(cycle, idx, budgets)) is not None]
    found.sort(key=Victims.rank)
    for v in found[:MAX_VERIFIED]:
        if v.pods and _fits_without(framework, cycle, v):
            return v
    return None


def budgets_from(pdbs: Sequence[Mapping[str, object]]) -> list[Budget]:
    """policy/v1 PodDisruptionBudgets as budgets (disruptionsAllowed from status)."""
    out = []
    for pdb in pdbs:
        md = pdb.get("metadata") or {}
        spec = pdb.get("spec") or {}
        status = pdb.get("status") or {}
        if not isinstance(md, dict) or not isinstance(spec, dict) or not isinstance(status, dict):
            continue
        if spec.get("selector") is None:
            continue
        try:
            selector = LabelSelector(spec.get("selector"))
        except ValueError:
            continue
        out.append(Budget(str(md.get("namespace", "")), selector, int(status.get("disruptionsAllowed") or 0)))
    return out
