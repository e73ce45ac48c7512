"""Inter-pod affinity and anti-affinity, over any topology key.

Counts of matching pods per node come from the state's tracked selectors;
per topology domain they are one ``np.bincount`` over the key's label
column. Three required checks, as in Kubernetes:

- the incoming pod's required affinity terms must each match a pod in the
  node's domain (unless no pod matches anywhere and the pod matches its own
  terms: the first pod of a self-affine group may start anywhere with the
  keys);
- its required anti-affinity terms must match no pod in the node's domain;
- existing pods' required anti-affinity must not match the incoming pod in
  their domain.

A node is explained by the first check it fails, in that order.

Preferred terms score: weight times matching pods in the domain, affinity
up and anti-affinity down, normalized to 0..100.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from corral.scheduler.framework import Cycle
from corral.scheduler.podinfo import PodClass
from corral.scheduler.podterms import PodTerm, parse_terms

EXISTING_ANTI = "node(s) didn't satisfy existing pods anti-affinity rules"
ANTI = "node(s) didn't match pod anti-affinity rules"
AFFINITY = "node(s) didn't match pod affinity rules"


def terms(cycle: Cycle) -> tuple[list[PodTerm], list[PodTerm], list[PodTerm], list[PodTerm]]:
    return class_terms(cycle.cls)


def class_terms(cls: PodClass) -> tuple[list[PodTerm], list[PodTerm], list[PodTerm], list[PodTerm]]:
    """(required affinity, preferred affinity, required anti, preferred anti)."""
    memo = cls.memo
    hit = memo.get("interpod")
    if hit is None:
        aff, anti = (parse_terms(cls.affinity, k, cls.namespace)
                     for k in ("podAffinity", "podAntiAffinity"))
        hit = memo["interpod"] = (aff[0], aff[1], anti[0], anti[1])
    return hit


def domain_counts(cycle: Cycle, key: str, per_node: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(domain id per node, matching pods in each node's domain; 0 without the key)."""
    dom = cycle.state.labels.domains(key, cycle.n)
    valid = dom >= 0
    if not valid.any():
        return dom, np.zeros(cycle.n, dtype=np.int64)
    totals = np.bincount(dom[valid], weights=per_node[valid], minlength=int(dom.max()) + 1)
    return dom, np.where(valid, totals[np.where(valid, dom, 0)], 0)


class InterPodAffinity:
    name = "InterPodAffinity"

    def _existing_anti(self, cycle: Cycle) -> np.ndarray | None:
        state = cycle.state
        blocked = None
        for group in state.anti.groups.values():
            if not group.term.matches(cycle.cls.namespace, cycle.cls.labels, state.ns_labels):
                continue
            counts = group.counts[: cycle.n]
            if not counts.any():
                continue
            _, in_domain = domain_counts(cycle, group.term.topology_key, counts)
            hit = in_domain > 0
            blocked = hit if blocked is None else blocked | hit
        return blocked

    def _checks(self, cycle: Cycle) -> list[tuple[str, np.ndarray]]:
        """Each required check as (reason, failing mask), cached per attempt."""
        found = cycle.scratch.get("interpod")
        if found is not None:
            return found
        state = cycle.state
        req_aff, _, req_anti, _ = terms(cycle)
        found = []
        if req_aff:
            found.append((AFFINITY, ~self._affinity_ok(cycle, req_aff)))
        if req_anti:
            bad = np.zeros(cycle.n, dtype=bool)
            for term in req_anti:
                _, in_domain = domain_counts(cycle, term.topology_key, state.counts(term))
                bad |= in_domain > 0
            found.append((ANTI, bad))
        existing = self._existing_anti(cycle)
        if existing is not None:
            found.append((EXISTING_ANTI, existing))
        cycle.scratch["interpod"] = found
        return found

    def _affinity_ok(self, cycle: Cycle, req_aff: list[PodTerm]) -> np.ndarray:
        state = cycle.state
        ok = np.ones(cycle.n, dtype=bool)
        has_keys = np.ones(cycle.n, dtype=bool)
        any_match = False
        for term in req_aff:
            per_node = state.counts(term)
            any_match = any_match or bool(per_node.any())
            dom, in_domain = domain_counts(cycle, term.topology_key, per_node)
            has_keys &= dom >= 0
            ok &= in_domain > 0
        if not any_match and all(t.matches(cycle.cls.namespace, cycle.cls.labels, state.ns_labels)
                                 for t in req_aff):
            return has_keys
        return ok & has_keys

    def filter(self, cycle: Cycle) -> np.ndarray | None:
        if not cycle.state.anti.groups and not cycle.cls.has_inter_pod_terms():
            return None
        checks = self._checks(cycle)
        if not checks:
            return None
        mask = np.ones(cycle.n, dtype=bool)
        for _, failing in checks:
            mask &= ~failing
        return mask

    def explain(self, cycle: Cycle, idxs: np.ndarray) -> Counter[str]:
        """The first failing check per node, in Kubernetes' order."""
        out: Counter[str] = Counter()
        left = np.ones(len(idxs), dtype=bool)
        for reason, failing in self._checks(cycle):
            hit = failing[idxs] & left
            if hit.any():
                out[reason] = int(hit.sum())
            left &= ~hit
        return out

    def resolvable(self, reason: str) -> bool:
        return reason != AFFINITY

    def score(self, cycle: Cycle, idxs: np.ndarray) -> np.ndarray | None:
        _, pref_aff, _, pref_anti = terms(cycle)
        if not pref_aff and not pref_anti:
            return None
        total = np.zeros(cycle.n, dtype=np.float64)
        for sign, group in ((1, pref_aff), (-1, pref_anti)):
            for term in group:
                _, in_domain = domain_counts(cycle, term.topology_key, cycle.state.counts(term))
                total += sign * term.weight * in_domain
        raw = total[idxs]
        lo, hi = raw.min(), raw.max()
        if hi == lo:
            return None
        return (raw - lo) * (100.0 / (hi - lo))
