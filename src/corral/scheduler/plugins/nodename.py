"""spec.nodeName set before scheduling: only that node will do."""

from __future__ import annotations

from collections import Counter

import numpy as np

from corral.scheduler.framework import Cycle


class NodeName:
    name = "NodeName"

    def filter(self, cycle: Cycle) -> np.ndarray | None:
        wanted = cycle.cls.spec.get("nodeName")
        if not wanted:
            return None
        mask = np.zeros(cycle.n, dtype=bool)
        idx = cycle.state.index.get(wanted)
        if idx is not None:
            mask[idx] = True
        return mask

    def explain(self, cycle: Cycle, idxs: np.ndarray) -> Counter[str]:
        return Counter({"node(s) didn't match the requested node name": len(idxs)})

    def resolvable(self, reason: str) -> bool:
        return False
