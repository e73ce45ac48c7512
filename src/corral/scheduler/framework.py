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

    def place(self, cycle: Cycle, keys: list[str], *, round_keys: dict[str, str] | None,
              fill: str = "top") -> Placement:
        """Choose nodes for the pods ``keys`` (all of ``cycle.cls``) and
        assume each on its node in the state, in order.

        ``round_keys`` maps the topology keys a round must respect to "one"
        (one pod per domain) or "spread" (as many as maxSkew allows); None
        means one pod per round. ``fill`` says how a class with no
        inter-pod rules shares a round out: "binpack" fills the best node
        before the next, "level" gives each node as many pods as one-by-one
        least-allocated placement would, "top" one pod to each of the best.
        """
        out: list[int] = []
        result = Placement(out)
        count = len(keys)
        batch_spread = round_keys is not None and "spread" in round_keys.values()
        relax = batch_spread
        while len(out) < count:
            cycle.scratch.clear()
            # A spread round checks skew with its own allowances (see
            # PodTopologySpread.round_allowance), so the filter's per-pod
            # skew check is relaxed; if that yields nothing, retry strictly.
            cycle.scratch["relax_spread"] = relax
            idxs = np.flatnonzero(self.feasible(cycle))
            want = count - len(out)
            chosen = idxs[:0]
            if len(idxs):
                scores = self.score(cycle, idxs)
                if round_keys is None or (want == 1 and not relax):
                    chosen = idxs[[int(np.argmax(scores))]]
                elif fill == "binpack" and not round_keys:
                    chosen = self._fill(cycle, idxs, scores, want)
                elif fill == "level" and not round_keys:
                    chosen = self._level(cycle, idxs, scores, want)
                else:
                    chosen = self._spread_round(cycle, idxs, scores, want, round_keys, strict=not relax)
            if len(chosen) == 0:
                if relax:
                    relax = False
                    continue
                cycle.scratch.clear()
                result.diagnosis = self.diagnose(cycle)
                break
            cycle.state.place_many(cycle.cls, keys[len(out): len(out) + len(chosen)], chosen)
            out.extend(chosen.tolist())
            result.rounds += 1
            result.round_ends.append(len(out))
            relax = batch_spread
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

    def _level(self, cycle: Cycle, idxs: np.ndarray, scores: np.ndarray, want: int) -> np.ndarray:
        """One-by-one greedy placement in one step: under least-allocated
        scoring a node's score drops by the same step with every pod it takes
        (other scores of a class without inter-pod rules do not change), so
        the pods go to the ``want`` best (node, j-th pod) pairs: every pair
        scoring above a common level."""
        from corral.scheduler.plugins.resources import capacity_for, spread_step

        weight = next((w for p, w in self.scores if getattr(p, "strategy", None) == "spread"), 0.0)
        if want < len(idxs):  # a node below the want-th best first pod gets nothing
            top = np.argpartition(-scores, want - 1)[:want]
            idxs, scores = idxs[top], scores[top]
        cap = capacity_for(cycle, idxs)
        step = np.maximum(spread_step(cycle, idxs) * weight, 1e-9)
        lo, hi = float((scores - (cap - 1) * step).min()) - 1.0, float(scores.max())

        def taken(level: float) -> np.ndarray:
            return np.clip(np.floor((scores - level) / step) + 1, 0, cap).astype(np.int64)

        for _ in range(40):  # the highest level at which enough pairs score above it
            mid = (lo + hi) / 2
            if taken(mid).sum() >= want:
                lo = mid
            else:
                hi = mid
        counts = taken(lo)
        extra = int(counts.sum()) - want
        if extra > 0:  # give back the worst last pods (ties at the level)
            last = np.where(counts > 0, scores - (counts - 1) * step, np.inf)
            counts[np.argsort(last, kind="stable")[:extra]] -= 1
        return np.repeat(idxs, counts)

    def _ranked(self, idxs: np.ndarray, scores: np.ndarray, want: int) -> np.ndarray:
        """Candidates best first; only the top few when they surely suffice."""
        top = min(len(idxs), 4 * want + 64)
        if top < len(idxs):
            part = np.argpartition(-scores, top - 1)[:top]
            return idxs[part[np.argsort(-scores[part], kind="stable")]]
        return idxs[np.argsort(-scores, kind="stable")]

    def _allowance(self, cycle: Cycle, key: str, mode: str, want: int) -> np.ndarray | None:
        """Pods a round may put in each domain of ``key``: one, or for a hard
        spread key as many as keep every domain within maxSkew."""
        if mode != "spread":
            return None
        for plugin in self.filters:
            fill = getattr(plugin, "round_allowance", None)
            if fill is not None:
                return fill(cycle, key, want)
        return None

    def _spread_round(self, cycle: Cycle, idxs: np.ndarray, scores: np.ndarray, want: int,
                      keys: dict[str, str], *, strict: bool = True) -> np.ndarray:
        m = min(want, len(idxs))
        if not keys:
            top = np.argpartition(-scores, m - 1)[:m] if m < len(idxs) else np.arange(len(idxs))
            return idxs[top]
        # A spread round fills several domains: rank them all, or the top
        # few could all sit in one domain.
        ranked = self._ranked(idxs, scores, len(idxs) if "spread" in keys.values() else want)
        accept = np.ones(len(ranked), dtype=bool)
        for key, mode in keys.items():
            dom = cycle.state.labels.domains(key, cycle.n)[ranked]
            allowance = self._allowance(cycle, key, mode, want)
            occ = _occurrence(dom)
            if allowance is None:
                accept &= (occ < 1) | (dom < 0)
            else:
                accept &= (dom >= 0) & (occ < allowance[np.where(dom >= 0, dom, 0)])
        picked = ranked[accept][:m]
        for key, mode in keys.items():
            if mode == "spread":
                for plugin in self.filters:
                    trim = getattr(plugin, "trim_round", None)
                    if trim is not None:
                        picked = trim(cycle, key, picked)
        if len(picked) == 0 and strict:  # nothing batches: the best alone is feasible
            picked = ranked[:1]
        return picked


def _occurrence(dom: np.ndarray) -> np.ndarray:
    """For each position, how many earlier positions share its domain."""
    order = np.argsort(dom, kind="stable")
    sd = dom[order]
    n = len(sd)
    starts = np.flatnonzero(np.r_[True, sd[1:] != sd[:-1]]) if n else np.array([], dtype=np.int64)
    lengths = np.diff(np.r_[starts, n])
    occ_sorted = np.arange(n) - np.repeat(starts, lengths)
    occ = np.empty(n, dtype=np.int64)
    occ[order] = occ_sorted
    return occ
