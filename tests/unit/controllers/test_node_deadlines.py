"""The node lifecycle controller finds silent nodes from a deadline heap:
a pass costs what is due, not a look at every node, and still names
exactly the silent ones at the right time. Driven without a server: the
informers' caches are filled directly and nothing is written."""

from __future__ import annotations

from typing import Any

from corral.client.api import ApiClient
from corral.client.events import EventRecorder
from corral.client.resources import NODES
from corral.clock import FakeClock
from corral.controllers.informers import SharedInformers
from corral.controllers.nodelifecycle import NodeLifecycleConfig, NodeLifecycleController
from corral.failover import FENCE_ANNOTATION, safe_grace

GRACE = 2.5


def node(name: str, zone: str, ready: str = "True", fence: float | None = None) -> dict[str, Any]:
    md: dict[str, Any] = {"name": name, "resourceVersion": "1",
                          "labels": {"topology.kubernetes.io/zone": zone}}
    if fence is not None:
        md["annotations"] = {FENCE_ANNOTATION: str(fence)}
    return {"apiVersion": "v1", "kind": "Node", "metadata": md,
            "status": {"conditions": [{"type": "Ready", "status": ready}]}}


def lease(name: str, rv: int) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "kube-node-lease", "resourceVersion": str(rv)}}


def controller(clock: FakeClock, nodes: list[dict[str, Any]]) -> NodeLifecycleController:
    client = ApiClient("https://127.0.0.1:1")  # never used: nothing here writes
    informers = SharedInformers(client, clock=clock)
    ctrl = NodeLifecycleController(client, informers, EventRecorder(client, "t", clock=clock),
                                   config=NodeLifecycleConfig(grace=GRACE), clock=clock)
    informers.get(NODES).replace(nodes, "1")
    drain(ctrl)
    return ctrl


def drain(ctrl: NodeLifecycleController) -> set[str]:
    """The node keys queued for a reconcile since the last drain."""
    added: list[str] = ctrl.__dict__.setdefault("added", [])
    if ctrl.queue.add != added.append:
        ctrl.queue.add = added.append  # type: ignore[method-assign]
    keys = set(added)
    added.clear()
    return keys


async def test_a_pass_looks_only_at_what_is_due_and_finds_the_silent():
    clock = FakeClock()
    names = [f"n{i}" for i in range(2000)]
    ctrl = controller(clock, [node(n, f"z{i % 4}") for i, n in enumerate(names)])
    rv = 1
    for n in names:
        ctrl.leases.apply("ADDED", lease(n, rv))
        rv += 1
    checked: list[str] = []
    real = ctrl.unreachable
    ctrl.unreachable = lambda nd, now: checked.append(nd["metadata"]["name"]) or real(nd, now)  # type: ignore
    for _ in range(20):  # 2 s of 0.1 s ticks: nothing is due yet
        await clock.advance(0.1)
        ctrl.monitor_once(clock.monotonic())
    assert checked == []
    for n in names:  # t=2: everyone renews
        ctrl.leases.apply("MODIFIED", lease(n, rv))
        rv += 1
    # From now on everyone but n7 renews every second; n7 is silent past t=4.5.
    for _ in range(2):
        await clock.advance(1.0)
        for n in names:
            if n != "n7":
                ctrl.leases.apply("MODIFIED", lease(n, rv))
                rv += 1
        ctrl.monitor_once(clock.monotonic())
    assert ctrl._silent == set() and "n7" not in drain(ctrl)
    # Each node was looked at once when its first deadline (t=2.5) came.
    assert sorted(checked) == sorted(names)
    checked.clear()
    await clock.advance(0.6)
    ctrl.monitor_once(clock.monotonic())
    assert "n7" in drain(ctrl)
    assert ctrl._silent == {"n7"} and checked == ["n7"]
    # Renewing again makes it reachable at once.
    ctrl.leases.apply("MODIFIED", lease("n7", rv))
    assert ctrl._silent == set() and "n7" in drain(ctrl)


async def test_zone_counts_follow_silence_readiness_and_deletion():
    clock = FakeClock()
    nodes = [node("a1", "a"), node("a2", "a"), node("a3", "a", ready="False"), node("b1", "b")]
    ctrl = controller(clock, nodes)
    for i, nd in enumerate(nodes):
        ctrl.leases.apply("ADDED", lease(nd["metadata"]["name"], i + 1))
    assert dict(ctrl._zone_total) == {"a": 3, "b": 1} and ctrl._zone_down["a"] == 1
    await clock.advance(GRACE + 0.1)
    ctrl.leases.apply("MODIFIED", lease("b1", 10))
    ctrl.monitor_once(clock.monotonic())
    assert ctrl._silent == {"a1", "a2", "a3"} and ctrl._zone_down["a"] == 3
    # A whole zone gone next to a live one is really gone: evictions go ahead.
    assert ctrl._zone_state.get("a", "Normal") == "Normal"
    assert ctrl._admitted == {"a1", "a2", "a3"}
    ctrl.nodes.apply("DELETED", nodes[0])
    assert ctrl._zone_total["a"] == 2 and ctrl._zone_down["a"] == 2 and "a1" not in ctrl._down


async def test_a_fencing_node_gets_at_least_its_safe_grace():
    clock = FakeClock()
    ctrl = controller(clock, [node("slow", "z", fence=30.0)])
    ctrl.leases.apply("ADDED", lease("slow", 1))
    await clock.advance(GRACE + 1)
    ctrl.monitor_once(clock.monotonic())
    assert ctrl._silent == set()
    await clock.advance(safe_grace(30.0) - GRACE)
    ctrl.monitor_once(clock.monotonic())
    assert ctrl._silent == {"slow"}


async def test_a_learning_detector_that_tightens_is_checked_at_the_new_deadline():
    clock = FakeClock()
    client = ApiClient("https://127.0.0.1:1")
    informers = SharedInformers(client, clock=clock)
    ctrl = NodeLifecycleController(client, informers, EventRecorder(client, "t", clock=clock),
                                   config=NodeLifecycleConfig(grace=1.0, max_grace=10.0, detector="phi"),
                                   clock=clock)
    informers.get(NODES).replace([node("n", "z")], "1")
    learned = [9.0]  # what the phi detector has learned this node needs
    ctrl.detector.timeout = lambda name: learned[0]  # type: ignore[method-assign]
    ctrl.leases.apply("ADDED", lease("n", 1))  # checked again in 9 s
    await clock.advance(0.5)
    learned[0] = 1.0  # steadier heartbeats: the timeout tightens
    ctrl.leases.apply("MODIFIED", lease("n", 2))
    for _ in range(13):  # silent for 1.3 s: past the tightened timeout
        await clock.advance(0.1)
        ctrl.monitor_once(clock.monotonic())
    assert ctrl._silent == {"n"}
