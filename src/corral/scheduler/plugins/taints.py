"""Taints and tolerations.

Nodes are grouped by their exact taint set (a cluster has few distinct
sets), so a pod's tolerations are checked once per set and broadcast to all
nodes through the taint-set id column. NoSchedule and NoExecute taints
filter; PreferNoSchedule taints lower the score."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from corral.scheduler.framework import Cycle

Taint = tuple[str, str, str]  # key, value, effect


def tolerates(tolerations: list[dict[str, Any]], taint: Taint) -> bool:
    key, value, effect = taint
    for tol in tolerations:
        t_effect = tol.get("effect")
        if t_effect and t_effect != effect:
            continue
        op = tol.get("operator") or "Equal"
        t_key = tol.get("key")
        if op == "Exists":
            if not t_key or t_key == key:
                return True
        elif t_key == key and str(tol.get("value") or "") == value:
            return True
    return False


def _untolerated(cycle: Cycle) -> tuple[list[Taint | None], np.ndarray]:
    """Per taint set: the first untolerated hard taint (or None), and the
    count of untolerated PreferNoSchedule taints."""
    tolerations = cycle.cls.spec.get("tolerations") or []
    hard: list[Taint | None] = []
    soft = np.zeros(max(1, len(cycle.state.taint_sets)), dtype=np.float64)
    for i, taints in enumerate(cycle.state.taint_sets):
        first = None
        for t in taints:
            if t[2] in ("NoSchedule", "NoExecute") and first is None and not tolerates(tolerations, t):
                first = t
            elif t[2] == "PreferNoSchedule" and not tolerates(tolerations, t):
                soft[i] += 1
        hard.append(first)
    return hard, soft


class TaintToleration:
    name = "TaintToleration"

    def _table(self, cycle: Cycle) -> tuple[list[Taint | None], np.ndarray]:
        return cycle.cached("taints", lambda: _untolerated(cycle))

    def filter(self, cycle: Cycle) -> np.ndarray | None:
        hard, _ = self._table(cycle)
        if not any(hard):
            return None
        ok = np.array([h is None for h in hard], dtype=bool)
        return ok[cycle.state.taint_id[: cycle.n]]

    def explain(self, cycle: Cycle, idxs: np.ndarray) -> Counter[str]:
        hard, _ = self._table(cycle)
        out: Counter[str] = Counter()
        for tid in cycle.state.taint_id[idxs].tolist():
            t = hard[tid]
            if t is not None:
                out[f"node(s) had untolerated taint {{{t[0]}: {t[1]}}}"] += 1
        return out

    def resolvable(self, reason: str) -> bool:
        return False

    def score(self, cycle: Cycle, idxs: np.ndarray) -> np.ndarray | None:
        _, soft = self._table(cycle)
        if not soft.any():
            return None
        counts = soft[cycle.state.taint_id[idxs]]
        top = counts.max()
        return 100.0 * (1.0 - counts / top) if top > 0 else None
