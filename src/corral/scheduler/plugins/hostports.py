"""Host ports: two pods may not claim the same protocol and port on one
node unless they bind different specific addresses (0.0.0.0 clashes with
every address)."""

from __future__ import annotations

from collections import Counter

import numpy as np

from corral.scheduler.framework import Cycle


def _clash(a: tuple[str, str, int], b: tuple[str, str, int]) -> bool:
    return a[0] == b[0] and a[2] == b[2] and (a[1] == b[1] or "0.0.0.0" in (a[1], b[1]))


class NodePorts:
    name = "NodePorts"

    def filter(self, cycle: Cycle) -> np.ndarray | None:
        wanted = cycle.cls.host_ports
        if not wanted:
            return None
        mask = np.ones(cycle.n, dtype=bool)
        for idx, used in enumerate(cycle.state.ports[: cycle.n]):
            if used and any(_clash(w, u) for w in wanted for u in used):
                mask[idx] = False
        return mask

    def explain(self, cycle: Cycle, idxs: np.ndarray) -> Counter[str]:
        return Counter({"node(s) didn't have free ports for the requested pod ports": len(idxs)})

    def resolvable(self, reason: str) -> bool:
        return True
