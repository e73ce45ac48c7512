"""Nodes that take no new pods: not Ready, or cordoned.

A cordoned node (spec.unschedulable) still takes a pod that tolerates the
node.kubernetes.io/unschedulable:NoSchedule taint, as in Kubernetes."""

from __future__ import annotations

from collections import Counter

import numpy as np

from corral.scheduler.framework import Cycle
from corral.scheduler.plugins.taints import tolerates

UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"


class NodeReady:
    name = "NodeReady"

    def filter(self, cycle: Cycle) -> np.ndarray | None:
        return cycle.state.ready[: cycle.n]

    def explain(self, cycle: Cycle, idxs: np.ndarray) -> Counter[str]:
        return Counter({"node(s) were not ready": len(idxs)})

    def resolvable(self, reason: str) -> bool:
        return False


class NodeUnschedulable:
    name = "NodeUnschedulable"

    def filter(self, cycle: Cycle) -> np.ndarray | None:
        tolerations = cycle.cls.spec.get("tolerations") or []
        if tolerates(tolerations, (UNSCHEDULABLE_TAINT, "", "NoSchedule")):
            return None
        return ~cycle.state.unschedulable[: cycle.n]

    def explain(self, cycle: Cycle, idxs: np.ndarray) -> Counter[str]:
        return Counter({"node(s) were unschedulable": len(idxs)})

    def resolvable(self, reason: str) -> bool:
        return False
