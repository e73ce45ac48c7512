"""Pod topology spread constraints.

For each constraint, matching pods (the pod's namespace, labelSelector plus
matchLabelKeys) are counted per domain of topologyKey over the *eligible*
nodes: those carrying every constraint's key, honouring node affinity
(nodeAffinityPolicy, default Honor) and taints (nodeTaintsPolicy, default
Ignore). A DoNotSchedule constraint refuses a node whose domain would then
exceed the least-loaded domain by more than maxSkew; with fewer eligible
domains than minDomains the least load counts as zero. ScheduleAnyway
constraints prefer emptier domains in the score.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from corral.scheduler.framework import Cycle
from corral.scheduler.plugins.nodeaffinity import required_mask
from corral.scheduler.plugins.taints import TaintToleration
from corral.scheduler.podinfo import PodClass
from corral.scheduler.podterms import PodTerm
from corral.scheduler.selectors import LabelSelector

SKEW = "node(s) didn't match pod topology spread constraints"
MISSING = "node(s) didn't match pod topology spread constraints (missing required label)"


@dataclass(frozen=True)
class Constraint:
    term: PodTerm
    max_skew: int
    hard: bool
    min_domains: int
    honor_affinity: bool
    honor_taints: bool
    self_match: bool


def constraints(cycle: Cycle) -> list[Constraint]:
    return class_constraints(cycle.cls)


def class_constraints(cls: PodClass) -> list[Constraint]:
    found = cls.memo.get("spread")
    if found is None:
        found = cls.memo["spread"] = [_parse(cls, raw) for raw in
                                      cls.spec.get("topologySpreadConstraints") or []]
    return found


def _parse(cls: PodClass, raw: dict) -> Constraint:
    key = raw.get("topologyKey") or ""
    if not key:
        raise ValueError("topologySpreadConstraints.topologyKey: Required value")
    sel = dict(raw.get("labelSelector") or {})
    extra = [{"key": k, "operator": "In", "values": [cls.labels[k]]}
             for k in raw.get("matchLabelKeys") or [] if k in cls.labels]
    if extra:
        sel["matchExpressions"] = [*(sel.get("matchExpressions") or []), *extra]
    selector = LabelSelector(sel) if raw.get("labelSelector") is not None or extra else None
    term = PodTerm(selector or _NONE, frozenset([cls.namespace]), None, key)
    return Constraint(
        term=term,
        max_skew=int(raw.get("maxSkew") or 1),
        hard=(raw.get("whenUnsatisfiable") or "DoNotSchedule") == "DoNotSchedule",
        min_domains=int(raw.get("minDomains") or 1),
        honor_affinity=(raw.get("nodeAffinityPolicy") or "Honor") == "Honor",
        honor_taints=(raw.get("nodeTaintsPolicy") or "Ignore") == "Honor",
        self_match=selector is not None and selector.matches(cls.labels),
    )


class _NoPods(LabelSelector):
    """No labelSelector: the constraint counts no pods."""

    def matches(self, labels: object) -> bool:  # type: ignore[override]
        return False


_NONE = _NoPods(None)


class PodTopologySpread:
    name = "PodTopologySpread"

    def __init__(self) -> None:
        self._taints = TaintToleration()

    def _eligible(self, cycle: Cycle, cons: list[Constraint]) -> np.ndarray:
        state = cycle.state
        mask = state.alive[: cycle.n].copy()
        for c in cons:
            mask &= state.labels.domains(c.term.topology_key, cycle.n) >= 0
        if any(c.honor_affinity for c in cons):
            m = required_mask(cycle)
            if m is not None:
                mask &= m
        if any(c.honor_taints for c in cons):
            m = self._taints.filter(cycle)
            if m is not None:
                mask &= m
        return mask

    def _domain_load(self, cycle: Cycle, c: Constraint, eligible: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        """(domain per node, pods in the node's domain, least domain load)."""
        dom = cycle.state.labels.domains(c.term.topology_key, cycle.n)
        per_node = np.where(eligible, cycle.state.counts(c.term), 0)
        size = int(dom.max()) + 1 if len(dom) and dom.max() >= 0 else 1
        totals = np.bincount(dom[eligible], weights=per_node[eligible], minlength=size)
        present = np.zeros(size, dtype=bool)
        present[dom[eligible]] = True
        least = int(totals[present].min()) if present.any() else 0
        if present.sum() < c.min_domains:
            least = 0
        load = np.where(dom >= 0, totals[np.where(dom >= 0, dom, 0)], 0)
        return dom, load, least

    def _checks(self, cycle: Cycle) -> list[tuple[str, np.ndarray]]:
        found = cycle.scratch.get("spread")
        if found is not None:
            return found
        cons = constraints(cycle)
        hard = [c for c in cons if c.hard]
        found = []
        if hard:
            eligible = self._eligible(cycle, cons)
            missing = np.zeros(cycle.n, dtype=bool)
            skewed = np.zeros(cycle.n, dtype=bool)
            for c in hard:
                dom, load, least = self._domain_load(cycle, c, eligible)
                missing |= dom < 0
                skewed |= (dom >= 0) & (load + int(c.self_match) - least > c.max_skew)
            if cycle.scratch.get("relax_spread"):
                skewed[:] = False  # the round's allowances enforce skew
            found = [(MISSING, missing), (SKEW, skewed & ~missing)]
        cycle.scratch["spread"] = found
        return found

    def round_allowance(self, cycle: Cycle, key: str, want: int) -> np.ndarray | None:
        """Per domain of ``key``, how many of ``want`` identical pods may go
        there in one round. Filling the emptiest domains first to levels
        within maxSkew of the final least load is a valid one-by-one order,
        so each pod passes this filter as if placed alone."""
        found = self._round_counts(cycle, key)
        if found is None:
            return None
        c, totals, present = found
        counts = totals[present]
        lo, hi = int(counts.min()), int(counts.min()) + want + 1
        while lo < hi:  # the lowest level that absorbs every pod
            mid = (lo + hi) // 2
            if np.maximum(0, mid - counts).sum() >= want:
                hi = mid
            else:
                lo = mid + 1
        add = np.maximum(0, lo - counts)
        floor = 0 if present.sum() < c.min_domains else int((counts + add).min())
        add = np.minimum(add, np.maximum(0, floor + c.max_skew - counts))
        out = np.zeros(len(totals), dtype=np.int64)
        out[present] = add
        return out

    def _round_counts(self, cycle: Cycle, key: str) -> tuple[Constraint, np.ndarray, np.ndarray] | None:
        """(the one hard self-matching constraint on key, pods per domain,
        which domains are eligible), or None if a round must not batch."""
        cons = [c for c in constraints(cycle) if c.hard and c.term.topology_key == key]
        if len(cons) != 1 or not cons[0].self_match:
            return None
        c = cons[0]
        eligible = self._eligible(cycle, constraints(cycle))
        dom = cycle.state.labels.domains(key, cycle.n)
        per_node = np.where(eligible, cycle.state.counts(c.term), 0)
        size = int(dom.max()) + 1 if len(dom) and dom.max() >= 0 else 1
        totals = np.bincount(dom[eligible], weights=per_node[eligible], minlength=size).astype(np.int64)
        present = np.zeros(size, dtype=bool)
        present[dom[eligible]] = True
        return (c, totals, present) if present.any() else None

    def trim_round(self, cycle: Cycle, key: str, picked: np.ndarray) -> np.ndarray:
        """Drop the picks (worst first) that would leave a domain more than
        maxSkew above the least-loaded one once the round is placed: a
        domain may have received fewer pods than it was allowed."""
        found = self._round_counts(cycle, key)
        if found is None or not len(picked):
            return picked
        c, totals, present = found
        dom = cycle.state.labels.domains(key, cycle.n)[picked]
        got = np.bincount(dom[dom >= 0], minlength=len(totals))[: len(totals)]
        final = totals + got
        floor = 0 if present.sum() < c.min_domains else int(final[present].min())
        cap = np.maximum(0, floor + c.max_skew - totals)
        occ = np.zeros(len(picked), dtype=np.int64)
        seen: dict[int, int] = {}
        for i, d in enumerate(dom.tolist()):
            occ[i] = seen.get(d, 0)
            seen[d] = occ[i] + 1
        keep = (dom >= 0) & (occ < cap[np.where(dom >= 0, dom, 0)])
        return picked[keep]

    def filter(self, cycle: Cycle) -> np.ndarray | None:
        if not cycle.cls.spec.get("topologySpreadConstraints"):
            return None
        mask = np.ones(cycle.n, dtype=bool)
        for _, failing in self._checks(cycle):
            mask &= ~failing
        return mask

    def explain(self, cycle: Cycle, idxs: np.ndarray) -> Counter[str]:
        out: Counter[str] = Counter()
        for reason, failing in self._checks(cycle):
            hits = int(failing[idxs].sum())
            if hits:
                out[reason] = hits
        return out

    def resolvable(self, reason: str) -> bool:
        return reason == SKEW

    def score(self, cycle: Cycle, idxs: np.ndarray) -> np.ndarray | None:
        soft = [c for c in constraints(cycle) if not c.hard]
        if not soft:
            return None
        eligible = self._eligible(cycle, constraints(cycle))
        total = np.zeros(len(idxs), dtype=np.float64)
        for c in soft:
            dom, load, _ = self._domain_load(cycle, c, eligible)
            total += load[idxs] + c.max_skew - 1
            total[dom[idxs] < 0] = np.inf
        finite = np.isfinite(total)
        if not finite.any():
            return None
        hi, lo = total[finite].max(), total[finite].min()
        score = np.zeros(len(idxs))
        score[finite] = 100.0 if hi == lo else (hi - total[finite]) * (100.0 / (hi - lo))
        return score
