"""What the filters see: a pod's requests and a node with what is already
placed on it (bound pods plus pods this scheduler assumed but whose binding
the informer has not shown yet)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from corral.scheduler.quantity import milli, units

Obj = dict[str, Any]
CPU, MEMORY, PODS = "cpu", "memory", "pods"
# Scoring treats a pod without requests as using this much, so empty pods
# still spread instead of piling on one node (Kubernetes' non-zero defaults).
DEFAULT_MILLI_CPU = 100
DEFAULT_MEMORY = 200 * 2**20


def _resources(raw: dict[str, Any] | None) -> dict[str, int]:
    out: dict[str, int] = {}
    for name, value in (raw or {}).items():
        out[name] = milli(value, field=name) if name == CPU else units(value, field=name)
    return out


def pod_requests(pod: Obj) -> dict[str, int]:
    """Sum of containers' requests, at least the largest init container's,
    plus overhead: what the pod holds on its node."""
    spec = pod.get("spec") or {}
    total: dict[str, int] = {}
    for c in spec.get("containers") or []:
        for k, v in _resources((c.get("resources") or {}).get("requests")).items():
            total[k] = total.get(k, 0) + v
    for c in spec.get("initContainers") or []:
        for k, v in _resources((c.get("resources") or {}).get("requests")).items():
            total[k] = max(total.get(k, 0), v)
    for k, v in _resources(spec.get("overhead")).items():
        total[k] = total.get(k, 0) + v
    return total


@dataclass
class PodInfo:
    pod: Obj
    requests: dict[str, int]

    @classmethod
    def of(cls, pod: Obj) -> PodInfo:
        return cls(pod, pod_requests(pod))

    @property
    def key(self) -> str:
        md = self.pod.get("metadata") or {}
        return f"{md.get('namespace', '')}/{md.get('name', '')}"

    @property
    def score_cpu(self) -> int:
        return self.requests.get(CPU) or DEFAULT_MILLI_CPU

    @property
    def score_memory(self) -> int:
        return self.requests.get(MEMORY) or DEFAULT_MEMORY


@dataclass
class NodeInfo:
    node: Obj
    allocatable: dict[str, int] = field(default_factory=dict)
    requested: dict[str, int] = field(default_factory=dict)
    score_requested: dict[str, int] = field(default_factory=lambda: {CPU: 0, MEMORY: 0})
    pods: dict[str, PodInfo] = field(default_factory=dict)

    @classmethod
    def of(cls, node: Obj) -> NodeInfo:
        status = node.get("status") or {}
        alloc = status.get("allocatable") or status.get("capacity") or {}
        return cls(node, _resources(alloc))

    @property
    def name(self) -> str:
        return (self.node.get("metadata") or {}).get("name", "")

    def add(self, info: PodInfo) -> None:
        if info.key in self.pods:
            self.remove(info.key)
        self.pods[info.key] = info
        for k, v in info.requests.items():
            self.requested[k] = self.requested.get(k, 0) + v
        self.requested[PODS] = self.requested.get(PODS, 0) + 1
        self.score_requested[CPU] += info.score_cpu
        self.score_requested[MEMORY] += info.score_memory

    def remove(self, key: str) -> None:
        info = self.pods.pop(key, None)
        if info is None:
            return
        for k, v in info.requests.items():
            self.requested[k] = self.requested.get(k, 0) - v
        self.requested[PODS] = self.requested.get(PODS, 0) - 1
        self.score_requested[CPU] -= info.score_cpu
        self.score_requested[MEMORY] -= info.score_memory
