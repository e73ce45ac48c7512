"""The scheduler's picture of the cluster as arrays, one column per node.

Allocatable and requested amounts (one row per resource, extended resources
added as they appear), readiness, cordons, taint-set and runtime-set ids,
label columns (also the topology domains) and per-node pod counts are numpy
arrays kept current from informer events and from the scheduler's own
assumptions, so every filter and score is a vector operation over all nodes.

A node's slot is reused after the node is deleted; ``alive`` masks empty
slots. Pods are kept per node for preemption and for the first scan of a new
tracked selector; everything per-pod is shared through its :class:`PodClass`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from corral.scheduler.labels import LabelColumns
from corral.scheduler.podinfo import CPU, EPHEMERAL, MEMORY, PODS, PodClass
from corral.scheduler.podterms import AntiGroups, PodTerm, SelectorCounts, parse_terms
from corral.scheduler.quantity import milli, units

Obj = dict[str, Any]
BASE_RESOURCES = (CPU, MEMORY, EPHEMERAL, PODS)
NO_POD_LIMIT = 2**40
RUNTIMES_KEY = "corral.dev/runtimes"
DEFAULT_RUNTIMES = frozenset(["process"])


def node_runtimes(node: Obj) -> frozenset[str]:
    """The runtimes a node advertises (label or annotation, comma separated);
    a node that says nothing runs only isolated processes."""
    md = node.get("metadata") or {}
    raw = (md.get("annotations") or {}).get(RUNTIMES_KEY) or (md.get("labels") or {}).get(RUNTIMES_KEY)
    if not raw:
        return DEFAULT_RUNTIMES
    return frozenset(p.strip() for p in str(raw).replace(".", ",").split(",") if p.strip())


def _is_ready(node: Obj) -> bool:
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


@dataclass(slots=True)
class Placed:
    cls: PodClass
    idx: int  # node slot, -1 while the node is unknown
    node: str
    assumed: bool


class NodeState:
    def __init__(self, capacity: int = 64) -> None:
        self.capacity = capacity
        self.size = 0  # slots in use (high-water mark)
        self.index: dict[str, int] = {}
        self.names: list[str | None] = []
        self.nodes: list[Obj | None] = []
        self._free: list[int] = []
        self.resources: dict[str, int] = {r: i for i, r in enumerate(BASE_RESOURCES)}
        self.alloc = np.zeros((len(BASE_RESOURCES), capacity), dtype=np.int64)
        self.req = np.zeros_like(self.alloc)
        self.nz_req = np.zeros((2, capacity), dtype=np.int64)  # cpu, memory with non-zero defaults
        self.alive = np.zeros(capacity, dtype=bool)
        self.ready = np.zeros(capacity, dtype=bool)
        self.unschedulable = np.zeros(capacity, dtype=bool)
        self.taint_sets: list[tuple[tuple[str, str, str], ...]] = []
        self._taint_ids: dict[tuple[tuple[str, str, str], ...], int] = {}
        self.taint_id = np.zeros(capacity, dtype=np.int32)
        self.runtime_sets: list[frozenset[str]] = []
        self._runtime_ids: dict[frozenset[str], int] = {}
        self.runtime_id = np.zeros(capacity, dtype=np.int32)
        self.labels = LabelColumns(capacity)
        self.ns_labels: dict[str, dict[str, str]] = {}
        self.selectors = SelectorCounts(capacity, self.ns_labels)
        self.anti = AntiGroups(capacity)
        self.ports: list[dict[tuple[str, str, int], int]] = []
        self.node_pods: list[dict[str, PodClass]] = []
        self.pods: dict[str, Placed] = {}
        self._waiting: dict[str, set[str]] = {}  # node name -> pods bound to it before it appeared
        self.generation = 0  # bumps on any node change, invalidating cached masks
        self._name_ids: np.ndarray | None = None

    # -- nodes -------------------------------------------------------------

    @property
    def node_count(self) -> int:
        return len(self.index)

    def name_ids(self) -> np.ndarray:
        if self._name_ids is None:
            self._name_ids = np.array([self.index.get(n, -1) if n else -1 for n in self.names],
                                      dtype=np.int32)
        return self._name_ids

    def _grow(self) -> None:
        cap = self.capacity * 2

        def wider(a: np.ndarray, fill: Any = 0) -> np.ndarray:
            shape = (*a.shape[:-1], cap - a.shape[-1])
            return np.concatenate([a, np.full(shape, fill, dtype=a.dtype)], axis=-1)

        self.alloc, self.req, self.nz_req = wider(self.alloc), wider(self.req), wider(self.nz_req)
        self.alive, self.ready = wider(self.alive, False), wider(self.ready, False)
        self.unschedulable = wider(self.unschedulable, False)
        self.taint_id, self.runtime_id = wider(self.taint_id), wider(self.runtime_id)
        self.labels.grow(cap)
        self.selectors.grow(cap)
        self.anti.grow(cap)
        self.capacity = cap

    def resource_row(self, name: str) -> int:
        row = self.resources.get(name)
        if row is None:
            row = self.resources[name] = len(self.resources)
            self.alloc = np.vstack([self.alloc, np.zeros((1, self.capacity), dtype=np.int64)])
            self.req = np.vstack([self.req, np.zeros((1, self.capacity), dtype=np.int64)])
        return row

    def set_node(self, node: Obj) -> int:
        md = node.get("metadata") or {}
        name = md.get("name", "")
        idx = self.index.get(name)
        old_labels: dict[str, str] = {}
        if idx is None:
            if self._free:
                idx = self._free.pop()
            else:
                if self.size == self.capacity:
                    self._grow()
                idx = self.size
                self.size += 1
                self.names.append(None)
                self.nodes.append(None)
                self.ports.append({})
                self.node_pods.append({})
            self.index[name] = idx
            self.names[idx] = name
            self._name_ids = None
        else:
            old = self.nodes[idx] or {}
            old_labels = (old.get("metadata") or {}).get("labels") or {}
        self.nodes[idx] = node
        self._set_node_fields(idx, node, old_labels)
        self.alive[idx] = True
        self.generation += 1
        for key in self._waiting.pop(name, set()):
            placed = self.pods.get(key)
            if placed is not None and placed.idx < 0:
                del self.pods[key]
                self.place(key, placed.cls, name, assumed=placed.assumed)
        return idx

    def _set_node_fields(self, idx: int, node: Obj, old_labels: dict[str, str]) -> None:
        status, spec = node.get("status") or {}, node.get("spec") or {}
        alloc = status.get("allocatable") or status.get("capacity") or {}
        self.alloc[:, idx] = 0
        self.alloc[self.resources[PODS], idx] = NO_POD_LIMIT
        for rname, value in alloc.items():
            try:
                amount = milli(value) if rname == CPU else units(value)
            except ValueError:
                continue  # a malformed quantity on a node offers nothing
            row = self.resource_row(rname)  # may grow the arrays: look them up after
            self.alloc[row, idx] = amount
        self.ready[idx] = _is_ready(node)
        self.unschedulable[idx] = bool(spec.get("unschedulable"))
        taints = tuple(sorted((str(t.get("key") or ""), str(t.get("value") or ""), str(t.get("effect") or ""))
                              for t in spec.get("taints") or []))
        tid = self._taint_ids.get(taints)
        if tid is None:
            tid = self._taint_ids[taints] = len(self.taint_sets)
            self.taint_sets.append(taints)
        self.taint_id[idx] = tid
        runtimes = node_runtimes(node)
        rid = self._runtime_ids.get(runtimes)
        if rid is None:
            rid = self._runtime_ids[runtimes] = len(self.runtime_sets)
            self.runtime_sets.append(runtimes)
        self.runtime_id[idx] = rid
        self.labels.set(idx, {k: str(v) for k, v in ((node.get("metadata") or {}).get("labels") or {}).items()},
                        old_labels)

    def remove_node(self, name: str) -> None:
        idx = self.index.pop(name, None)
        if idx is None:
            return
        for key in list(self.node_pods[idx]):
            placed = self.pods.pop(key)
            self._account(placed.cls, idx, -1)
            self.pods[key] = Placed(placed.cls, -1, name, placed.assumed)
            self._waiting.setdefault(name, set()).add(key)
        self.labels.set(idx, {}, (((self.nodes[idx] or {}).get("metadata") or {}).get("labels") or {}))
        self.alive[idx] = self.ready[idx] = self.unschedulable[idx] = False
        self.alloc[:, idx] = 0
        self.req[:, idx] = 0
        self.nz_req[:, idx] = 0
        self.names[idx] = None
        self.nodes[idx] = None
        self.ports[idx] = {}
        self._free.append(idx)
        self._name_ids = None
        self.generation += 1

    def set_namespace(self, name: str, labels: dict[str, str] | None) -> None:
        if labels is None:
            changed = self.ns_labels.pop(name, None) is not None
        else:
            changed = self.ns_labels.get(name) != labels
            self.ns_labels[name] = dict(labels)
        if changed:
            self.selectors.clear()
            self.generation += 1

    # -- pods --------------------------------------------------------------

    def request_vector(self, cls: PodClass) -> list[tuple[int, int]]:
        vec = cls.memo.get("vec")
        if vec is None:
            vec = [(self.resource_row(r), v) for r, v in cls.requests.items() if v and r != PODS]
            cls.memo["vec"] = vec
        return vec

    def anti_terms(self, cls: PodClass) -> list[PodTerm]:
        terms = cls.memo.get("anti_req")
        if terms is None:
            terms = parse_terms(cls.affinity, "podAntiAffinity", cls.namespace)[0]
            cls.memo["anti_req"] = terms
        return terms

    def _account(self, cls: PodClass, idxs: np.ndarray | int, sign: int) -> None:
        """Add (sign=1) or remove (-1) pods of one class on the given slots;
        ``idxs`` may repeat a slot (several pods on one node)."""
        for row, amount in self.request_vector(cls):
            np.add.at(self.req[row], idxs, sign * amount)
        np.add.at(self.req[self.resources[PODS]], idxs, sign)
        np.add.at(self.nz_req[0], idxs, sign * cls.score_cpu)
        np.add.at(self.nz_req[1], idxs, sign * cls.score_memory)
        self.selectors.add(cls.namespace, cls.labels, idxs, sign)
        if cls.affinity.get("podAntiAffinity"):
            self.anti.add(self.anti_terms(cls), idxs, sign)
        if cls.host_ports:
            for idx in np.atleast_1d(idxs):
                used = self.ports[int(idx)]
                for port in cls.host_ports:
                    used[port] = used.get(port, 0) + sign
                    if used[port] <= 0:
                        del used[port]

    def place(self, key: str, cls: PodClass, node: str, *, assumed: bool = False) -> None:
        """A pod now holds resources on ``node`` (bound, or assumed by us)."""
        current = self.pods.get(key)
        if current is not None:
            if current.node == node and current.cls is cls:
                current.assumed = current.assumed and assumed
                return
            self.unplace(key)
        idx = self.index.get(node, -1)
        self.pods[key] = Placed(cls, idx, node, assumed)
        if idx < 0:
            self._waiting.setdefault(node, set()).add(key)
            return
        self.node_pods[idx][key] = cls
        self._account(cls, idx, 1)

    def place_many(self, cls: PodClass, keys: list[str], idxs: np.ndarray) -> None:
        """Assume a batch of identical pods at once (one vector update)."""
        for key, idx in zip(keys, idxs.tolist(), strict=True):
            self.pods[key] = Placed(cls, idx, self.names[idx] or "", True)
            self.node_pods[idx][key] = cls
        self._account(cls, idxs, 1)

    def unplace(self, key: str) -> None:
        placed = self.pods.pop(key, None)
        if placed is None:
            return
        if placed.idx < 0:
            self._waiting.get(placed.node, set()).discard(key)
            return
        self.node_pods[placed.idx].pop(key, None)
        self._account(placed.cls, placed.idx, -1)

    def placed_pods(self) -> Iterator[tuple[str, dict[str, str], int]]:
        """(namespace, labels, node slot) of every placed pod, for first counts."""
        for placed in self.pods.values():
            yield placed.cls.namespace, placed.cls.labels, placed.idx

    def counts(self, term: PodTerm) -> np.ndarray:
        return self.selectors.counts(term, self.placed_pods)[: self.size]
