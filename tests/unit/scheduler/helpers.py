"""Hand-made clusters for the scheduler's unit tests."""

from __future__ import annotations

import random
from typing import Any

from corral.scheduler.core import SchedulingCore
from corral.scheduler.profile import Profile


def node(name: str, cpu: str = "2", memory: str = "4Gi", pods: str = "110", ready: bool = True,
         unschedulable: bool = False, labels: dict | None = None, taints: list | None = None,
         annotations: dict | None = None, extra: dict | None = None) -> dict[str, Any]:
    alloc = {"cpu": cpu, "memory": memory, "pods": pods, **(extra or {})}
    return {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})},
                         "annotations": annotations or {}},
            "spec": {"unschedulable": unschedulable, "taints": taints or []},
            "status": {"allocatable": alloc,
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def pod(name: str, cpu: str | None = "100m", memory: str | None = None, labels: dict | None = None,
        ns: str = "default", requests: dict | None = None, ports: list | None = None,
        **spec: Any) -> dict[str, Any]:
    req = dict(requests or {})
    if cpu:
        req["cpu"] = cpu
    if memory:
        req["memory"] = memory
    container: dict[str, Any] = {"name": "c", "resources": {"requests": req}}
    if ports:
        container["ports"] = ports
    return {"metadata": {"name": name, "namespace": ns, "labels": labels or {},
                         "creationTimestamp": "2026-01-01T00:00:00Z", "uid": f"uid-{name}"},
            "spec": {"containers": [container], **spec}}


def cluster(*nodes: dict, strategy: str = "spread", seed: int = 1) -> SchedulingCore:
    core = SchedulingCore([Profile(strategy=strategy)], random.Random(seed))
    for n in nodes:
        core.state.set_node(n)
    return core


def bind(core: SchedulingCore, p: dict, node_name: str) -> None:
    core.state.place(f"{p['metadata']['namespace']}/{p['metadata']['name']}", core.classes.of(p), node_name)


def place(core: SchedulingCore, *pods: dict) -> list[str | None]:
    return [d.node for d in core.schedule(list(pods))]


def why(core: SchedulingCore, p: dict) -> str:
    d = core.schedule([p])[0]
    assert d.node is None, f"expected {p['metadata']['name']} to fit nowhere, got {d.node}"
    return d.message
