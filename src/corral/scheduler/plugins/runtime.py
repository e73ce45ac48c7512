"""Runtime availability: a pod asking for spec.runtimeClassName goes only
to nodes that advertise that runtime (``corral.dev/runtimes`` on the Node,
comma separated; a node that says nothing offers ``process``)."""

from __future__ import annotations

from collections import Counter

import numpy as np

from corral.scheduler.framework import Cycle


class RuntimeAvailable:
    name = "RuntimeClass"

    def filter(self, cycle: Cycle) -> np.ndarray | None:
        wanted = cycle.cls.runtime_class
        if not wanted:
            return None
        ok = np.array([wanted in s for s in cycle.state.runtime_sets] or [False], dtype=bool)
        return ok[cycle.state.runtime_id[: cycle.n]]

    def explain(self, cycle: Cycle, idxs: np.ndarray) -> Counter[str]:
        return Counter({f"node(s) didn't support runtime class \"{cycle.cls.runtime_class}\"": len(idxs)})

    def resolvable(self, reason: str) -> bool:
        return False
