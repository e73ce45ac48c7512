"""Node affinity: spec.nodeSelector and spec.affinity.nodeAffinity.

Required terms (ORed, each an AND of label requirements with In, NotIn,
Exists, DoesNotExist, Gt, Lt, and matchFields on metadata.name) and the
nodeSelector filter; preferred terms add their weights, normalized to 0..100.
Masks depend only on nodes, so they are cached per pod class until a node
changes."""

from __future__ import annotations

from collections import Counter

import numpy as np

from corral.scheduler.framework import Cycle
from corral.scheduler.selectors import match_labels_mask, node_selector_mask, node_term_mask


def required_mask(cycle: Cycle) -> np.ndarray | None:
    """Nodes the pod's nodeSelector and required node affinity allow (None: all)."""
    spec = cycle.cls.spec

    def compute() -> np.ndarray | None:
        selector = spec.get("nodeSelector") or {}
        required = ((cycle.cls.affinity.get("nodeAffinity") or {})
                    .get("requiredDuringSchedulingIgnoredDuringExecution"))
        if not selector and required is None:
            return None
        mask = np.ones(cycle.n, dtype=bool)
        if selector:
            mask &= match_labels_mask(cycle.state, selector)
        if required is not None:
            mask &= node_selector_mask(cycle.state, required)
        return mask

    return cycle.cached("node_affinity", lambda: (compute(),))[0]


class NodeAffinity:
    name = "NodeAffinity"

    def filter(self, cycle: Cycle) -> np.ndarray | None:
        return required_mask(cycle)

    def explain(self, cycle: Cycle, idxs: np.ndarray) -> Counter[str]:
        return Counter({"node(s) didn't match Pod's node affinity/selector": len(idxs)})

    def resolvable(self, reason: str) -> bool:
        return False

    def score(self, cycle: Cycle, idxs: np.ndarray) -> np.ndarray | None:
        preferred = ((cycle.cls.affinity.get("nodeAffinity") or {})
                     .get("preferredDuringSchedulingIgnoredDuringExecution")) or []
        if not preferred:
            return None

        def compute() -> np.ndarray:
            total = np.zeros(cycle.n, dtype=np.float64)
            for p in preferred:
                total += int(p.get("weight") or 0) * node_term_mask(cycle.state, p.get("preference") or {})
            return total

        raw = cycle.cached("node_affinity_pref", compute)[idxs]
        top = raw.max() if len(raw) else 0
        return raw * (100.0 / top) if top > 0 else None
