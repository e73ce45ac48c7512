"""The scheduling core: pods in, placements (or reasons) out, no I/O.

Used by the live :class:`~corral.scheduler.scheduler.Scheduler` and by the
algorithm benchmark alike. A batch of pending pods (already in priority
order) is grouped by profile and equivalence class; each group is placed by
its profile's framework in rounds; pods that fit nowhere get Kubernetes'
explanation and, if their priority allows, a preemption plan.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from corral.scheduler.framework import Cycle, Framework
from corral.scheduler.nodestate import NodeState
from corral.scheduler.plugins.interpod import class_terms
from corral.scheduler.plugins.topologyspread import class_constraints
from corral.scheduler.podinfo import PODS, ClassCache, PodClass, pod_key
from corral.scheduler.preemption import Budget, Victims, select_victims
from corral.scheduler.profile import Profile

Obj = dict[str, Any]
NEVER = "not eligible due to preemptionPolicy=Never."


@dataclass
class Decision:
    pod: Obj
    key: str
    node: str | None = None
    message: str = ""
    victims: Victims | None = None
    waiting: bool = False  # nominated earlier; its victims are still going


@dataclass
class RoundPlan:
    keys: dict[str, str] | None  # topology key -> "one" or "spread"; None: one pod per round
    fill: str  # binpack | level | top (see Framework.place)


def round_plan(cls: PodClass, strategy: str) -> RoundPlan:
    """How many pods of one class may be placed per filter pass, safely."""
    req_aff, pref_aff, req_anti, pref_anti = class_terms(cls)
    if req_aff:
        return RoundPlan(None, "top")
    keys = {c.term.topology_key: "spread" if c.hard else "one" for c in class_constraints(cls)}
    keys.update({t.topology_key: "one" for t in (*pref_aff, *req_anti, *pref_anti)})
    if cls.host_ports:
        keys.setdefault("kubernetes.io/hostname", "one")
    interfering = bool(keys) or bool(cls.host_ports)
    if interfering:
        return RoundPlan(keys, "top")
    return RoundPlan(keys, {"binpack": "binpack", "spread": "level"}.get(strategy, "top"))


@dataclass
class SchedulingCore:
    profiles: Sequence[Profile] = field(default_factory=lambda: [Profile()])
    rng: random.Random = field(default_factory=random.Random)
    state: NodeState = field(default_factory=NodeState)

    def __post_init__(self) -> None:
        self.classes = ClassCache()
        self.frameworks: dict[str, tuple[Profile, Framework]] = {
            p.scheduler_name: (p, p.framework(self.rng)) for p in self.profiles}
        self.nominated: dict[str, tuple[int, PodClass]] = {}
        self.budgets: list[Budget] = []

    def handles(self, scheduler_name: str | None) -> bool:
        return (scheduler_name or "default-scheduler") in self.frameworks

    def _extra(self, cls: PodClass, skip: set[str]) -> np.ndarray | None:
        """Room held on nominated nodes for preemptors of at least this priority."""
        if not self.nominated:
            return None
        extra = np.zeros_like(self.state.req)
        for key, (idx, other) in self.nominated.items():
            if key in skip or other.priority < cls.priority or idx >= self.state.size:
                continue
            for row, amount in self.state.request_vector(other):
                extra[row, idx] += amount
            extra[self.state.resources[PODS], idx] += 1
        return extra

    def schedule(self, pods: Sequence[Obj]) -> list[Decision]:
        """Place pods (best first); every pod gets a Decision, in input order."""
        groups: dict[tuple[str, int], list[int]] = {}
        decisions = [Decision(p, pod_key(p)) for p in pods]
        for i, pod in enumerate(pods):
            name = (pod.get("spec") or {}).get("schedulerName") or "default-scheduler"
            try:
                cls = self.classes.of(pod)
            except ValueError as exc:
                decisions[i].message = f"invalid pod: {exc}"
                continue
            groups.setdefault((name, id(cls)), []).append(i)
            decisions[i].pod = pod
        for (name, _), members in groups.items():
            self._place_group(name, [decisions[i] for i in members])
        return decisions

    def _place_group(self, scheduler_name: str, group: list[Decision]) -> None:
        profile, framework = self.frameworks[scheduler_name]
        cls = self.classes.of(group[0].pod)
        keys = [d.key for d in group]
        cycle = Cycle(self.state, cls, self.rng, self._extra(cls, set(keys)))
        try:
            plan = round_plan(cls, profile.strategy)
            placement = framework.place(cycle, keys, round_keys=plan.keys, fill=plan.fill)
        except ValueError as exc:
            for d in group:
                d.message = f"invalid pod: {exc}"
            return
        for d, idx in zip(group, placement.idxs, strict=False):
            d.node = self.state.names[idx]
        if placement.diagnosis is None:
            return
        rest = group[len(placement.idxs):]
        diag = placement.diagnosis
        victims = None
        if cls.preempt_never:
            message = diag.message(NEVER)
        elif rest[0].key in self.nominated:
            # Victims chosen on an earlier attempt are still terminating:
            # wait for them rather than evicting more.
            for d in rest:
                d.message = diag.message("")
                d.waiting = d.key in self.nominated
            return
        else:
            victims = select_victims(framework, cycle, diag, self.budgets)
            message = diag.message("" if victims is not None else None)
        for i, d in enumerate(rest):
            d.message = message
            if i == 0 and victims is not None:
                d.victims = victims
                self.nominated[d.key] = (victims.idx, cls)

    def forget_nomination(self, key: str) -> None:
        self.nominated.pop(key, None)
