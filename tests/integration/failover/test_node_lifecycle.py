"""The node lifecycle controller against a real API server, on a fake clock:
silence → Unknown + taints → evictions by tolerations; recovery; mass
failure; deleted nodes; cordon."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from corral.client.errors import AlreadyExistsError, NotFoundError
from corral.client.events import EventRecorder
from corral.client.resources import EVENTS, LEASES, NAMESPACES, NODES, PODS
from corral.clock import FakeClock
from corral.controllers.informers import SharedInformers
from corral.controllers.nodelifecycle import NodeLifecycleConfig, NodeLifecycleController
from corral.controllers.zone_disruption import DisruptionPolicy
from corral.failover import FENCE_ANNOTATION
from corral.testing import running_server

GRACE = 2.5
LEASE_NS = "kube-node-lease"


async def until(pred: Callable[[], Awaitable[Any]], timeout: float = 15.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await pred()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class World:
    def __init__(self, client: Any, clock: FakeClock) -> None:
        self.client = client
        self.clock = clock

    async def node(self, name: str, *, zone: str = "", fence: bool = True) -> None:
        meta: dict[str, Any] = {"name": name, "labels": {}}
        if zone:
            meta["labels"]["topology.kubernetes.io/zone"] = zone
        if fence:
            meta["annotations"] = {FENCE_ANNOTATION: "1.8"}
        await self.client.create(NODES, {"apiVersion": "v1", "kind": "Node", "metadata": meta})
        await self.set_ready(name, "True")
        lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                 "metadata": {"name": name, "namespace": LEASE_NS},
                 "spec": {"holderIdentity": name, "leaseDurationSeconds": 3}}
        await self.client.create(LEASES, lease, LEASE_NS)

    async def set_ready(self, name: str, status: str) -> None:
        cond = {"type": "Ready", "status": status, "reason": "KubeletReady",
                "lastHeartbeatTime": "2026-01-01T00:00:00Z",
                "lastTransitionTime": "2026-01-01T00:00:00Z"}
        await self.client.patch(NODES, name, {"status": {"conditions": [cond]}},
                                subresource="status")

    async def renew(self, name: str) -> None:
        stamp = f"2026-01-01T00:00:{int(time.monotonic() * 1000) % 60:02d}.000000Z"
        await self.client.patch(LEASES, name, {"spec": {"renewTime": stamp}}, LEASE_NS)

    async def pod(self, name: str, node: str, *tolerations: dict[str, Any]) -> None:
        body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x"}]}}
        if tolerations:
            body["spec"]["tolerations"] = list(tolerations)
        await self.client.create(PODS, body, "default")

    async def pod_exists(self, name: str) -> bool:
        try:
            await self.client.get(PODS, name, "default")
            return True
        except NotFoundError:
            return False

    async def taints(self, name: str) -> list[tuple[str, str]]:
        node = await self.client.get(NODES, name)
        return sorted((t["key"], t["effect"]) for t in (node.get("spec") or {}).get("taints") or [])

    async def ready(self, name: str) -> str:
        node = await self.client.get(NODES, name)
        return next(c["status"] for c in node["status"]["conditions"] if c["type"] == "Ready")

    async def pass_time(self, seconds: float, *, renewing: tuple[str, ...] = ()) -> None:
        """Let fake time pass in small steps, the named nodes renewing."""
        step = 0.25
        for _ in range(int(seconds / step)):
            for name in renewing:
                await self.renew(name)
            await asyncio.sleep(0.02)  # let the watch deliver the renewals
            await self.clock.advance(step)


@asynccontextmanager
async def world(tmp_path: Path, policy: DisruptionPolicy | None = None) -> AsyncIterator[World]:
    clock = FakeClock()
    async with running_server(tmp_path) as srv:
        client = srv.client()
        try:
            ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": LEASE_NS}}
            with contextlib.suppress(AlreadyExistsError):
                await client.create(NAMESPACES, ns)
            w = World(client, clock)
            informers = SharedInformers(client, clock=clock)
            recorder = EventRecorder(client, "node-controller", clock=clock)
            config = NodeLifecycleConfig(grace=GRACE, disruption=policy or DisruptionPolicy())
            ctrl = NodeLifecycleController(client, informers, recorder, config=config, clock=clock)
            w.controller = ctrl  # type: ignore[attr-defined]
            tasks = [asyncio.ensure_future(t) for t in (informers.run(), recorder.run(), ctrl.run())]
            try:
                yield w
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            await client.close()


UNREACHABLE = "node.kubernetes.io/unreachable"


async def test_silent_node_is_tainted_and_its_pods_evicted_by_tolerations(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        await w.node("alive")
        await w.node("dead")
        await w.pod("plain", "dead")  # no tolerations: evicted at once
        await w.pod("patient", "dead", {"key": UNREACHABLE, "operator": "Exists",
                                         "effect": "NoExecute", "tolerationSeconds": 30})
        await w.pod("stubborn", "dead", {"operator": "Exists"})
        await w.pod("elsewhere", "alive")
        await asyncio.sleep(0.5)  # informers synced
        await w.pass_time(2.0, renewing=("alive", "dead"))
        await w.pass_time(GRACE + 0.5, renewing=("alive",))
        await until(lambda: _gone(w, "plain"), what="the untolerating pod evicted")
        assert await w.ready("dead") == "Unknown"
        assert await w.taints("dead") == [(UNREACHABLE, "NoExecute"), (UNREACHABLE, "NoSchedule")]
        assert await w.ready("alive") == "True" and await w.taints("alive") == []
        assert await w.pod_exists("patient") and await w.pod_exists("stubborn")
        assert await w.pod_exists("elsewhere")
        await w.pass_time(31, renewing=("alive",))
        await until(lambda: _gone(w, "patient"), what="the pod tolerating 30 s evicted")
        assert await w.pod_exists("stubborn")
        # Back: the agent renews and reports Ready; the taints go.
        await w.renew("dead")
        await w.set_ready("dead", "True")
        await w.pass_time(0.5, renewing=("alive", "dead"))
        await until(lambda: _no_taints(w, "dead"), what="taints removed on recovery")


async def test_every_node_silent_pauses_evictions_and_says_so(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        for i in range(3):
            await w.node(f"n{i}")
            await w.pod(f"p{i}", f"n{i}")
        await asyncio.sleep(0.5)
        await w.pass_time(GRACE + 1.0)
        await until(lambda: _event(w, "ZoneFullDisruption"), what="a disruption Event")
        await asyncio.sleep(0.5)
        for i in range(3):
            assert await w.pod_exists(f"p{i}")
            assert (UNREACHABLE, "NoExecute") not in await w.taints(f"n{i}")
            assert (UNREACHABLE, "NoSchedule") in await w.taints(f"n{i}")


async def test_most_of_a_zone_silent_slows_evictions(tmp_path: Path) -> None:
    policy = DisruptionPolicy(secondary_rate=0.1)  # one node every 10 s
    async with world(tmp_path, policy) as w:
        for i in range(4):
            await w.node(f"n{i}")
            await w.pod(f"p{i}", f"n{i}")
        await asyncio.sleep(0.5)
        await w.pass_time(GRACE + 1.0, renewing=("n0",))
        await until(lambda: _event(w, "ZonePartialDisruption"), what="a disruption Event")
        await until(lambda: _count_gone(w, 1), what="a first eviction")
        await asyncio.sleep(0.5)
        assert await _count_gone(w, 1) and not await _count_gone(w, 2)
        await w.pass_time(11, renewing=("n0",))
        await until(lambda: _count_gone(w, 2), what="a second eviction, 10 s later")
        assert await w.pod_exists("p0")


async def test_deleted_node_loses_its_pods_and_cordon_taints(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        await w.node("gone")
        await w.node("kept")
        await w.pod("orphan", "gone")
        await asyncio.sleep(0.5)
        await w.client.patch(NODES, "kept", {"spec": {"unschedulable": True}})
        await until(lambda: _has_taint(w, "kept", "node.kubernetes.io/unschedulable"),
                    what="the cordon taint")
        await w.client.delete(NODES, "gone")

        async def noticed() -> bool:
            return "gone" in w.controller._missing_since  # type: ignore[attr-defined]

        await until(noticed, what="the controller to notice the deletion")
        # Its agent might still be alive: first a graceful deletion; once it
        # has been silent past the grace (fenced), the pod is removed for good.
        await w.pass_time(6.0, renewing=("kept",))
        await until(lambda: _gone(w, "orphan"), what="the deleted node's pod evicted")


async def _gone(w: World, name: str) -> bool:
    return not await w.pod_exists(name)


async def _no_taints(w: World, name: str) -> bool:
    return await w.taints(name) == []


async def _has_taint(w: World, name: str, key: str) -> bool:
    return any(k == key for k, _ in await w.taints(name))


async def _count_gone(w: World, n: int) -> bool:
    gone = [i for i in range(1, 4) if not await w.pod_exists(f"p{i}")]
    return len(gone) >= n


async def _event(w: World, reason: str) -> bool:
    events = (await w.client.list(EVENTS, "default"))["items"]
    return any(e.get("reason") == reason for e in events)
