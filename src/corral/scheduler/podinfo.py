"""What the scheduler needs from a pod, parsed once per equivalence class.

Pods stamped from one template (a ReplicaSet's, a Job's) differ only in name
and uid, so everything the filters and scores read (requests, selectors,
affinity, tolerations, spread constraints, ports, priority) is parsed into one
shared :class:`PodClass`. The class key is the canonical JSON of exactly those
fields: two pods with the same key are interchangeable for placement, which
lets the scheduler place a burst of them with one vector computation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from corral.scheduler.quantity import milli, units

Obj = dict[str, Any]
CPU, MEMORY, EPHEMERAL, PODS = "cpu", "memory", "ephemeral-storage", "pods"
# Scoring treats a pod without requests as using this much, so empty pods
# still spread instead of piling on one node (Kubernetes' non-zero defaults).
DEFAULT_MILLI_CPU = 100
DEFAULT_MEMORY = 200 * 2**20

_SPEC_FIELDS = ("nodeName", "nodeSelector", "affinity", "tolerations", "topologySpreadConstraints",
                "priority", "preemptionPolicy", "runtimeClassName", "overhead", "schedulerName")


def _resources(raw: Any, where: str) -> dict[str, int]:
    out: dict[str, int] = {}
    if not isinstance(raw, dict):
        return out
    for name, value in raw.items():
        f = f"{where}.{name}"
        out[name] = milli(value, field=f) if name == CPU else units(value, field=f)
    return out


def pod_requests(pod: Obj) -> dict[str, int]:
    """Sum of containers' requests, at least the largest init container's,
    plus overhead: what the pod holds on its node. Raises ValueError naming
    the field for a malformed quantity."""
    spec = pod.get("spec") or {}
    total: dict[str, int] = {}
    for i, c in enumerate(spec.get("containers") or []):
        reqs = _resources((c.get("resources") or {}).get("requests"),
                          f"spec.containers[{i}].resources.requests")
        for k, v in reqs.items():
            total[k] = total.get(k, 0) + v
    for i, c in enumerate(spec.get("initContainers") or []):
        reqs = _resources((c.get("resources") or {}).get("requests"),
                          f"spec.initContainers[{i}].resources.requests")
        for k, v in reqs.items():
            total[k] = max(total.get(k, 0), v)
    for k, v in _resources(spec.get("overhead"), "spec.overhead").items():
        total[k] = total.get(k, 0) + v
    return total


def host_ports(spec: Obj) -> tuple[tuple[str, str, int], ...]:
    """(protocol, hostIP, hostPort) the pod claims on its node."""
    out = []
    for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        for p in c.get("ports") or []:
            hp = p.get("hostPort")
            if hp:
                out.append((p.get("protocol") or "TCP", p.get("hostIP") or "0.0.0.0", int(hp)))
    return tuple(sorted(set(out)))


def class_key(pod: Obj) -> bytes:
    """The pod's equivalence class: namespace, labels and the spec fields
    placement reads (container requests and ports included)."""
    md = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    view = {k: spec[k] for k in _SPEC_FIELDS if k in spec}
    view["c"] = [(c.get("resources") or {}).get("requests") for c in spec.get("containers") or []]
    view["i"] = [(c.get("resources") or {}).get("requests") for c in spec.get("initContainers") or []]
    if any(p.get("hostPort") for c in spec.get("containers") or [] for p in c.get("ports") or []):
        view["p"] = [c.get("ports") for c in spec.get("containers") or []]
    view["ns"] = md.get("namespace", "")
    view["l"] = md.get("labels") or {}
    return orjson.dumps(view, option=orjson.OPT_SORT_KEYS)


@dataclass(eq=False)
class PodClass:
    """The placement-relevant part of a pod, shared by identical pods."""

    key: bytes
    namespace: str
    labels: dict[str, str]
    spec: Obj
    requests: dict[str, int]
    priority: int
    preempt_never: bool
    host_ports: tuple[tuple[str, str, int], ...]
    runtime_class: str | None
    score_cpu: int
    score_memory: int
    # Filled by the framework on first use (plugin-specific parsed state).
    memo: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, pod: Obj, key: bytes | None = None) -> PodClass:
        md = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        requests = pod_requests(pod)
        priority = spec.get("priority") or 0
        if not isinstance(priority, int):
            raise ValueError(f"spec.priority: {priority!r} is not an integer")
        return cls(
            key=key if key is not None else class_key(pod),
            namespace=md.get("namespace", "") or "",
            labels=dict(md.get("labels") or {}),
            spec=spec,
            requests=requests,
            priority=priority,
            preempt_never=spec.get("preemptionPolicy") == "Never",
            host_ports=host_ports(spec),
            runtime_class=spec.get("runtimeClassName") or None,
            score_cpu=requests.get(CPU) or DEFAULT_MILLI_CPU,
            score_memory=requests.get(MEMORY) or DEFAULT_MEMORY,
        )

    @property
    def affinity(self) -> Obj:
        return self.spec.get("affinity") or {}

    def has_inter_pod_terms(self) -> bool:
        aff = self.affinity
        return bool(aff.get("podAffinity") or aff.get("podAntiAffinity"))


class ClassCache:
    """Parsed classes by key, bounded: a cluster has far fewer templates
    than pods, and a class evicted is simply parsed again."""

    def __init__(self, max_size: int = 20_000) -> None:
        self._by_key: dict[bytes, PodClass] = {}
        self.max_size = max_size

    def of(self, pod: Obj) -> PodClass:
        key = class_key(pod)
        cls = self._by_key.get(key)
        if cls is None:
            cls = PodClass.parse(pod, key)
            if len(self._by_key) >= self.max_size:
                self._by_key.pop(next(iter(self._by_key)))
            self._by_key[key] = cls
        return cls


def pod_key(pod: Obj) -> str:
    md = pod.get("metadata") or {}
    return f"{md.get('namespace', '')}/{md.get('name', '')}"
