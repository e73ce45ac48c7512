"""The scheduling framework: filter → score → choose, over all nodes at once.

Filters answer with a boolean mask over every node slot, scores with a
0..100 array over the feasible nodes; both are vector operations over the
:class:`NodeState` arrays. Filters are chained cheapest first (see
:func:`corral.scheduler.profile.default_filters`). Each plugin can also
``explain`` why a set of nodes failed it, in Kubernetes' words, which is
only computed when a pod fits nowhere.

Identical pods (one :class:`PodClass`) are placed together in *rounds*: a
round recomputes the filters and scores once and places several pods, at
most one per node and per topology domain the class's inter-pod rules look
at, so each placement is feasible exactly as if the pods had gone one at a
time. A class whose own required pod affinity decides where its first pod
goes is placed one pod per round.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from corral.scheduler.nodestate import NodeState
from corral.scheduler.podinfo import PodClass

Obj = dict[str, Any]


@dataclass
class Cycle:
    """One attempt at placing one class: the state, the class, and a scratch
    pad plugins share between filter and score within the attempt."""

    state: NodeState
    cls: PodClass
    rng: random.Random
    extra_req: np.ndarray | None = None  # room held for nominated preemptors
    scratch: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return self.state.size

    def cached(self, name: str, compute: Any) -> Any:
        """A per-class value that depends only on nodes (not on pods):
        reused until any node changes."""
        memo = self.cls.memo
        hit = memo.get(name)
        if hit is not None and hit[0] == self.state.generation and hit[1] == self.n:
            return hit[2]
        value = compute()
        memo[name] = (self.state.generation, self.n, value)
        return value


class FilterPlugin(Protocol):
    name: str

    def filter(self, cycle: Cycle) -> np.ndarray | None:
        """Mask of node slots that pass; None when the pod asks nothing of
        this plugin (every node passes)."""

    def explain(self, cycle: Cycle, idxs: np.ndarray) -> Counter[str]:
        """Reasons (Kubernetes' wording, without the count) for the given
        failing nodes, counted per node."""

    def resolvable(self, reason: str) -> bool:
        """Could evicting lower-priority pods cure this reason?"""


class ScorePlugin(Protocol):
    name: str

    def score(self, cycle: Cycle, idxs: np.ndarray) -> np.ndarray | None:
        """0..100 per candidate node (higher is better), or None to abstain."""


@dataclass
class Diagnosis:
    total: int
    reasons: Counter[str]
    resolvable_nodes: np.ndarray  # slots whose only failures preemption might cure
    unresolvable: int

    def message(self, preemption: str | None = None) -> str:
        """Kubernetes' FitError text. ``preemption`` None: no victims were
        found; "": preemption is under way (no preemption clause)."""
        if self.total == 0:
            return "no nodes available to schedule pods"
        parts = sorted(f"{n} {r}" for r, n in self.reasons.items())
        text = f"0/{self.total} nodes are available: {', '.join(parts)}."
        if preemption == "":
            return text
        if preemption is None:
            pre = []
            if len(self.resolvable_nodes):
                pre.append(f"{len(self.resolvable_nodes)} No preemption victims found for incoming pod")
            if self.unresolvable:
                pre.append(f"{self.unresolvable} Preemption is not helpful for scheduling")
            preemption = f"0/{self.total} nodes are available: {', '.join(sorted(pre))}."
        return f"{text} preemption: {preemption}"


@dataclass
class Placement:
    """Where each pod of a batch went (node slots), and for the rest why not."""

    idxs: list[int]
    diagnosis: Diagnosis | None = None
    rounds: int = 0
    round_ends: list[int] = field(default_factory=list)  # pods placed after each round


def _jitter(rng: random.Random, n: int) -> np.ndarray:
    """Tiny noise so equal scores break ties at random, not by slot order."""
    return np.frombuffer(rng.randbytes(n * 2), dtype=np.uint16).astype(np.float64) * 1e-9


class Framework:
    """Runs one profile's plugins (see :mod:`corral.scheduler.profile`)."""

    def __init__(self, filters: list[FilterPlugin],
                 scores: list[tuple[ScorePlugin, float]], rng: random.Random | None = None) -> None:
        self.filters = filters
        self.scores = scores
        self.rng = rng or random.Random()

    def feasible(self, cycle: Cycle) -> np.ndarray:
        mask = cycle.state.alive[: cycle.n].copy()
        for plugin in self.filters:
            m = plugin.filter(cycle)
            if m is not None:
                mask &= m
                if not mask.any():
                    break
        return mask

    def score(self, cycle: Cycle, idxs: np.ndarray) -> np.ndarray:
        total = _jitter(self.rng, len(idxs))
        for plugin, weight in self.scores:
            s = plugin.score(cycle, idxs)
            if s is not None:
                total += weight * s
        return total

    def diagnose(self, cycle: Cycle) -> Diagnosis:
        """Which filter refused each node (the first that did), worded and counted."""
        alive = cycle.state.alive[: cycle.n]
        mask = alive.copy()
        reasons: Counter[str] = Counter()
        resolvable = np.zeros(cycle.n, dtype=bool)
        unresolvable = 0
        for plugin in self.filters:
            m = plugin.filter(cycle)
            if m is None:
                continue
            failing = np.flatnonzero(mask & ~m)
            if len(failing):
                found = plugin.explain(cycle, failing)
                reasons.update(found)
                if all(plugin.resolvable(r) for r in found):
                    resolvable[failing] = True
                else:
                    unresolvable += len(failing)
            mask &= m
        return Diagnosis(int(alive.sum()), reasons, np.flatnonzero(resolvable), unresolvable)

    def place(self, cycle: Cycle, keys: list[str], *, round_keys: list[str] | None,
              binpack: bool) -> Placement:
        """Choose nodes for the pods ``keys`` (all of ``cycle.cls``) and
        assume each on its node in the state, in order.

        ``round_keys`` are the topology keys a round must not repeat a domain
        of (None: one pod per round); ``binpack`` fills the best node before
        the next (most-allocated strategy on a class with no inter-pod rules).
        """
        out: list[int] = []
        result = Placement(out)
        count = len(keys)
        while len(out) < count:
            cycle.scratch.clear()
            idxs = np.flatnonzero(self.feasible(cycle))
            if len(idxs) == 0:
                result.diagnosis = self.diagnose(cycle)
                break
            scores = self.score(cycle, idxs)
            want = count - len(out)
            if round_keys is None or want == 1:
                chosen = idxs[[int(np.argmax(scores))]]
            elif binpack and not round_keys:
                chosen = self._fill(cycle, idxs, scores, want)
            else:
                chosen = self._spread_round(cycle, idxs, scores, want, round_keys)
            cycle.state.place_many(cycle.cls, keys[len(out): len(out) + len(chosen)], chosen)
            out.extend(chosen.tolist())
            result.rounds += 1
            result.round_ends.append(len(out))
        return result

    def _fill(self, cycle: Cycle, idxs: np.ndarray, scores: np.ndarray, want: int) -> np.ndarray:
        from corral.scheduler.plugins.resources import capacity_for

        order = np.argsort(-scores, kind="stable")
        cap = np.minimum(capacity_for(cycle, idxs)[order], want)
        cum = np.cumsum(cap)
        if cum[-1] <= want:
            return np.repeat(idxs[order], cap)
        last = int(np.searchsorted(cum, want))
        counts = cap[: last + 1].copy()
        counts[-1] -= int(cum[last]) - want
        return np.repeat(idxs[order[: last + 1]], counts)

    def _spread_round(self, cycle: Cycle, idxs: np.ndarray, scores: np.ndarray, want: int,
                      keys: list[str]) -> np.ndarray:
        m = min(want, len(idxs))
        if not keys:
            top = np.argpartition(-scores, m - 1)[:m] if m < len(idxs) else np.arange(len(idxs))
            return idxs[top]
        order = np.argsort(-scores, kind="stable")
        ranked = idxs[order]
        if len(keys) == 1:
            dom = cycle.state.labels.domains(keys[0], cycle.n)[ranked]
            keyed = dom >= 0
            _, first = np.unique(dom[keyed], return_index=True)
            picks = np.concatenate([np.flatnonzero(keyed)[first], np.flatnonzero(~keyed)])
            picks.sort()
            return ranked[picks[:m]]
        doms = [cycle.state.labels.domains(k, cycle.n) for k in keys]
        used: list[set[int]] = [set() for _ in keys]
        chosen = []
        for idx in ranked.tolist():
            ds = [int(d[idx]) for d in doms]
            if any(v >= 0 and v in u for v, u in zip(ds, used, strict=True)):
                continue
            for v, u in zip(ds, used, strict=True):
                if v >= 0:
                    u.add(v)
            chosen.append(idx)
            if len(chosen) == m:
                break
        return np.array(chosen, dtype=np.int64)
