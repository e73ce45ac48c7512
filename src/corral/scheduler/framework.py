"""Filter, score, explain.

Filters are chained cheapest first in :func:`default_filters`; each answers
``check(pod, node) -> reason | None`` and knows how to ``explain`` a reason
shared by several nodes. When no node fits, the reasons are counted and
worded like Kubernetes' FitError, so `kubectl describe pod` reads the same.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from typing import Protocol

from corral.scheduler.nodeinfo import CPU, MEMORY, NodeInfo, PodInfo
from corral.scheduler.plugins.nodeselector import NodeName, NodeSelector
from corral.scheduler.plugins.resources import ResourcesFit
from corral.scheduler.plugins.unschedulable import NodeReady, NodeUnschedulable, TaintToleration


class Filter(Protocol):
    name: str
    resolvable_by_preemption: bool

    def check(self, pod: PodInfo, node: NodeInfo) -> str | None: ...

    def explain(self, reason: str, count: int) -> str: ...


def default_filters() -> list[Filter]:
    # Cheap metadata checks first, arithmetic last.
    return [NodeReady(), NodeUnschedulable(), NodeName(), NodeSelector(), TaintToleration(),
            ResourcesFit()]


def least_allocated(pod: PodInfo, node: NodeInfo) -> float:
    """0..100: the share of cpu and memory left free after placing the pod."""
    scores = []
    for resource, want in ((CPU, pod.score_cpu), (MEMORY, pod.score_memory)):
        capacity = node.allocatable.get(resource, 0)
        if capacity <= 0:
            scores.append(0.0)
            continue
        used = node.score_requested.get(resource, 0) + want
        scores.append(max(0.0, (capacity - used) * 100 / capacity))
    return sum(scores) / len(scores)


@dataclass
class Failure:
    filter: Filter
    reason: str


@dataclass
class Result:
    node: str | None
    failures: dict[str, Failure]
    total: int

    def message(self) -> str:
        return fit_error_message(self.total, self.failures)


def fit_error_message(total: int, failures: dict[str, Failure]) -> str:
    if total == 0:
        return "no nodes available to schedule pods"
    by_reason: Counter[str] = Counter()
    explainers: dict[str, Filter] = {}
    preemption: Counter[str] = Counter()
    for failure in failures.values():
        by_reason[failure.reason] += 1
        explainers[failure.reason] = failure.filter
        if failure.filter.resolvable_by_preemption:
            preemption["No preemption victims found for incoming pod"] += 1
        else:
            preemption["Preemption is not helpful for scheduling"] += 1
    parts = sorted(explainers[r].explain(r, n) for r, n in by_reason.items())
    pre = sorted(f"{n} {r}" for r, n in preemption.items())
    return (
        f"0/{total} nodes are available: {', '.join(parts)}. "
        f"preemption: 0/{total} nodes are available: {', '.join(pre)}."
    )


class Framework:
    def __init__(self, filters: list[Filter] | None = None, rng: random.Random | None = None) -> None:
        self.filters = filters if filters is not None else default_filters()
        self.rng = rng or random.Random()

    def check(self, pod: PodInfo, node: NodeInfo) -> Failure | None:
        for f in self.filters:
            reason = f.check(pod, node)
            if reason is not None:
                return Failure(f, reason)
        return None

    def schedule(self, pod: PodInfo, nodes: list[NodeInfo]) -> Result:
        """The best feasible node, ties broken at random so equal nodes share
        a burst of pods; or every node's reason for refusing."""
        failures: dict[str, Failure] = {}
        best: list[str] = []
        best_score = -1.0
        for node in nodes:
            failure = self.check(pod, node)
            if failure is not None:
                failures[node.name] = failure
                continue
            score = least_allocated(pod, node)
            if score > best_score + 1e-9:
                best, best_score = [node.name], score
            elif abs(score - best_score) <= 1e-9:
                best.append(node.name)
        chosen = self.rng.choice(best) if best else None
        return Result(chosen, failures, len(nodes))
