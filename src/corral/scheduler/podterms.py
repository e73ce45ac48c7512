"""Pod affinity terms and the per-node pod counts they need, kept current.

A filter asking "how many pods matching this selector run in each zone?"
must not scan every pod on every attempt. Instead the first such question
registers the (selector, namespaces) pair as *tracked*: its per-node counts
are computed once by a scan and then updated as pods are placed or removed.
Templated workloads ask a handful of distinct questions, so the upkeep is a
few dictionary look-ups per pod.

Existing pods' own required anti-affinity terms are grouped the same way
(term → per-node count of pods carrying it), so the symmetric check ("would
the incoming pod break an existing pod's anti-affinity?") is one vector
operation per distinct term, not one per pod.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from corral.scheduler.selectors import LabelSelector

Obj = dict[str, Any]


@dataclass(frozen=True, eq=False)
class PodTerm:
    """One PodAffinityTerm (optionally weighted), parsed."""

    selector: LabelSelector
    namespaces: frozenset[str]
    ns_selector: LabelSelector | None
    topology_key: str
    weight: int = 0

    @classmethod
    def parse(cls, raw: Obj, own_namespace: str, weight: int = 0) -> PodTerm:
        topology_key = raw.get("topologyKey") or ""
        if not topology_key:
            raise ValueError("podAffinityTerm.topologyKey: Required value: can not be empty")
        names = frozenset(raw.get("namespaces") or [])
        raw_ns_sel = raw.get("namespaceSelector")
        ns_sel = None if raw_ns_sel is None else LabelSelector(raw_ns_sel)
        if not names and ns_sel is None:
            names = frozenset([own_namespace])
        return cls(LabelSelector(raw.get("labelSelector")) if raw.get("labelSelector") is not None
                   else _NOTHING, names, ns_sel, topology_key, weight)

    @property
    def scope_key(self) -> tuple[Any, ...]:
        return (self.selector.key, tuple(sorted(self.namespaces)),
                None if self.ns_selector is None else self.ns_selector.key)

    @property
    def key(self) -> tuple[Any, ...]:
        return (*self.scope_key, self.topology_key)

    def matches_namespace(self, namespace: str, ns_labels: Mapping[str, Mapping[str, str]]) -> bool:
        if namespace in self.namespaces:
            return True
        return self.ns_selector is not None and self.ns_selector.matches(ns_labels.get(namespace, {}))

    def matches(self, namespace: str, labels: Mapping[str, str],
                ns_labels: Mapping[str, Mapping[str, str]]) -> bool:
        if self.selector is _NOTHING:
            return False
        return self.matches_namespace(namespace, ns_labels) and self.selector.matches(labels)


class _Nothing(LabelSelector):
    """A missing labelSelector in an affinity term matches no pod."""

    def matches(self, labels: Mapping[str, str]) -> bool:
        return False


_NOTHING = _Nothing(None)


def parse_terms(aff: Obj, kind: str, namespace: str) -> tuple[list[PodTerm], list[PodTerm]]:
    """(required, preferred) terms of podAffinity or podAntiAffinity."""
    section = aff.get(kind) or {}
    required = [PodTerm.parse(t, namespace)
                for t in section.get("requiredDuringSchedulingIgnoredDuringExecution") or []]
    preferred = [PodTerm.parse(w.get("podAffinityTerm") or {}, namespace, int(w.get("weight") or 0))
                 for w in section.get("preferredDuringSchedulingIgnoredDuringExecution") or []]
    return required, preferred


class Tracked:
    __slots__ = ("term", "counts")

    def __init__(self, term: PodTerm, counts: np.ndarray) -> None:
        self.term = term
        self.counts = counts


class SelectorCounts:
    """Per-node counts of pods matching each tracked (selector, namespaces)."""

    def __init__(self, capacity: int, ns_labels: Mapping[str, Mapping[str, str]]) -> None:
        self.capacity = capacity
        self.ns_labels = ns_labels
        self._by_key: dict[tuple[Any, ...], Tracked] = {}
        self._anchored: dict[tuple[str, str], list[Tracked]] = {}
        self._loose: list[Tracked] = []

    def grow(self, capacity: int) -> None:
        for t in self._by_key.values():
            t.counts = np.concatenate([t.counts, np.zeros(capacity - len(t.counts), np.int32)])
        self.capacity = capacity

    def clear(self) -> None:
        """Namespace labels changed: recount lazily."""
        self._by_key.clear()
        self._anchored.clear()
        self._loose.clear()

    def counts(self, term: PodTerm,
               scan: Callable[[], Iterable[tuple[str, Mapping[str, str], int]]]) -> np.ndarray:
        """Counts per node for ``term``'s pods; ``scan`` yields every placed
        pod as (namespace, labels, node index) for the first count."""
        key = term.scope_key
        tracked = self._by_key.get(key)
        if tracked is None:
            counts = np.zeros(self.capacity, dtype=np.int32)
            for ns, labels, idx in scan():
                if idx >= 0 and term.matches(ns, labels, self.ns_labels):
                    counts[idx] += 1
            tracked = self._by_key[key] = Tracked(term, counts)
            anchor = term.selector.anchor
            if anchor is None:
                self._loose.append(tracked)
            else:
                self._anchored.setdefault(anchor, []).append(tracked)
        return tracked.counts

    def matching(self, namespace: str, labels: Mapping[str, str]) -> list[Tracked]:
        """The tracked selectors a pod with these labels counts toward."""
        out = [t for t in self._loose if t.term.matches(namespace, labels, self.ns_labels)]
        for k, v in labels.items():
            for t in self._anchored.get((k, v), ()):
                if t.term.matches(namespace, labels, self.ns_labels):
                    out.append(t)
        return out

    def add(self, namespace: str, labels: Mapping[str, str], idxs: np.ndarray | int, delta: int = 1) -> None:
        for t in self.matching(namespace, labels):
            np.add.at(t.counts, idxs, delta)


class AntiGroups:
    """Existing pods' required anti-affinity terms: per distinct term, how
    many pods on each node carry it."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.groups: dict[tuple[Any, ...], Tracked] = {}
        self.generation = 0

    def grow(self, capacity: int) -> None:
        for t in self.groups.values():
            t.counts = np.concatenate([t.counts, np.zeros(capacity - len(t.counts), np.int32)])
        self.capacity = capacity

    def add(self, terms: list[PodTerm], idxs: np.ndarray | int, delta: int = 1) -> None:
        for term in terms:
            group = self.groups.get(term.key)
            if group is None:
                if delta < 0:
                    continue
                group = self.groups[term.key] = Tracked(term, np.zeros(self.capacity, np.int32))
                self.generation += 1
            np.add.at(group.counts, idxs, delta)
