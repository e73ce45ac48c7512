"""Resource fit: does the node have room for the pod's requests?

Room is allocatable minus what bound, assumed and nominated pods request,
per resource row: cpu, memory, ephemeral-storage, extended resources, and the
pod count itself (status.allocatable.pods)."""

from __future__ import annotations

from collections import Counter

import numpy as np

from corral.scheduler.framework import Cycle
from corral.scheduler.podinfo import CPU, EPHEMERAL, MEMORY, PODS


def _requested(cycle: Cycle, row: int) -> np.ndarray:
    req = cycle.state.req[row, : cycle.n]
    if cycle.extra_req is not None:
        req = req + cycle.extra_req[row, : cycle.n]
    return req


class ResourcesFit:
    name = "NodeResourcesFit"

    def filter(self, cycle: Cycle) -> np.ndarray | None:
        state = cycle.state
        pods = state.resources[PODS]
        mask = _requested(cycle, pods) + 1 <= state.alloc[pods, : cycle.n]
        for row, amount in state.request_vector(cycle.cls):
            mask &= _requested(cycle, row) + amount <= state.alloc[row, : cycle.n]
        return mask

    def explain(self, cycle: Cycle, idxs: np.ndarray) -> Counter[str]:
        state = cycle.state
        out: Counter[str] = Counter()
        pods = state.resources[PODS]
        over = (_requested(cycle, pods)[idxs] + 1 > state.alloc[pods, idxs]).sum()
        if over:
            out["Too many pods"] = int(over)
        names = {row: name for name, row in state.resources.items()}
        order = {CPU: 0, MEMORY: 1, EPHEMERAL: 2}
        for row, amount in sorted(state.request_vector(cycle.cls),
                                  key=lambda ra: (order.get(names[ra[0]], 3), names[ra[0]])):
            short = (_requested(cycle, row)[idxs] + amount > state.alloc[row, idxs]).sum()
            if short:
                out[f"Insufficient {names[row]}"] = int(short)
        return out

    def resolvable(self, reason: str) -> bool:
        return True


def capacity_for(cycle: Cycle, idxs: np.ndarray) -> np.ndarray:
    """How many more pods of this class each node could take."""
    state = cycle.state
    pods = state.resources[PODS]
    cap = state.alloc[pods, idxs] - _requested(cycle, pods)[idxs]
    for row, amount in state.request_vector(cycle.cls):
        cap = np.minimum(cap, (state.alloc[row, idxs] - _requested(cycle, row)[idxs]) // amount)
    return np.maximum(cap, 0)


def spread_step(cycle: Cycle, idxs: np.ndarray) -> np.ndarray:
    """How much one more pod of this class lowers each node's spread score."""
    (_, alloc_cpu), (_, alloc_mem) = _fractions(cycle, idxs)
    with np.errstate(divide="ignore", invalid="ignore"):
        step = 50.0 * (cycle.cls.score_cpu / alloc_cpu + cycle.cls.score_memory / alloc_mem)
    return np.where(np.isfinite(step), step, 100.0)


def _fractions(cycle: Cycle, idxs: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """(used after placing the pod, allocatable) for cpu and memory, counting
    request-less pods at Kubernetes' non-zero defaults."""
    state = cycle.state
    cls = cycle.cls
    out = []
    for i, (res, want) in enumerate(((CPU, cls.score_cpu), (MEMORY, cls.score_memory))):
        alloc = state.alloc[state.resources[res], idxs].astype(np.float64)
        used = state.nz_req[i, idxs].astype(np.float64) + want
        out.append((used, alloc))
    return out


class ResourceStrategy:
    """Scores by how full a node would be: ``spread`` (least allocated),
    ``binpack`` (most allocated), ``balanced`` (cpu and memory in the same
    proportion) or ``random``."""

    name = "NodeResourcesFit"
    STRATEGIES = ("spread", "binpack", "balanced", "random")

    def __init__(self, strategy: str = "spread") -> None:
        if strategy not in self.STRATEGIES:
            raise ValueError(f"strategy: {strategy!r} is not one of {', '.join(self.STRATEGIES)}")
        self.strategy = strategy

    def score(self, cycle: Cycle, idxs: np.ndarray) -> np.ndarray | None:
        if self.strategy == "random":
            return np.frombuffer(cycle.rng.randbytes(len(idxs)), dtype=np.uint8) * (100 / 255)
        fracs = []
        with np.errstate(divide="ignore", invalid="ignore"):
            for used, alloc in _fractions(cycle, idxs):
                f = np.where(alloc > 0, used / alloc, 1.0)
                fracs.append(np.clip(f, 0.0, 1.0))
        if self.strategy == "spread":
            return (2.0 - fracs[0] - fracs[1]) * 50.0
        if self.strategy == "binpack":
            return (fracs[0] + fracs[1]) * 50.0
        return (1.0 - np.abs(fracs[0] - fracs[1]) / 2.0) * 100.0
