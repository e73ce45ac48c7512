"""The scheduler against the real API server, with hollow nodes from
corral.sim playing the agents: placement, explanations on the pod and in
Events, preemption through eviction, and the hollow nodes' own duties."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from corral.client.resources import EVENTS, LEASES, NODES, PODS, Resource
from corral.scheduler.scheduler import Scheduler
from corral.sim.cluster import HollowCluster
from corral.sim.hollow import NodeShape
from corral.testing import running_server

pytestmark = pytest.mark.timeout(90)
PCS = Resource("scheduling.k8s.io", "v1", "priorityclasses", "PriorityClass", False)


async def wait_for(check: Callable[[], Awaitable[Any]], timeout: float = 30.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}: last={last!r}")


def pod(name: str, cpu: str = "100m", labels: dict | None = None, **spec: Any) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "labels": labels or {}},
            "spec": {"containers": [{"name": "c", "image": "x", "resources": {"requests": {"cpu": cpu}}}],
                     "terminationGracePeriodSeconds": 5, **spec}}


@contextlib.asynccontextmanager
async def cluster(tmp_path, nodes: int = 3, cpu: str = "2"):
    async with running_server(tmp_path) as srv, srv.client() as client:
        hollow = HollowCluster(srv.url, token=srv.token, ca_file=str(srv.ca_file), count=nodes,
                               shape=NodeShape(cpu=cpu, memory="4Gi", zones=nodes), lease_period=1.0)
        ready = asyncio.Event()
        scheduler = Scheduler(srv.client())
        tasks = [asyncio.create_task(hollow.run(ready)), asyncio.create_task(scheduler.run())]
        try:
            await asyncio.wait_for(ready.wait(), 30)
            await wait_for(lambda: asyncio.sleep(0, scheduler.core.state.node_count == nodes), what="nodes")
            yield client, hollow, scheduler
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await scheduler.client.close()


async def phase(client, name: str) -> tuple[str, str]:
    p = await client.get(PODS, name, "default")
    return p["spec"].get("nodeName", ""), (p.get("status") or {}).get("phase", "")


async def test_pods_placed_and_run_on_hollow_nodes(tmp_path):
    async with cluster(tmp_path) as (client, hollow, _):
        anti = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "kubernetes.io/hostname"}]}}
        for i in range(4):
            await client.create(PODS, pod(f"db-{i}", labels={"app": "db"}, affinity=anti))

        async def placed() -> list:
            got = [await phase(client, f"db-{i}") for i in range(3)]
            return got if all(p == "Running" for _, p in got) else []

        got = await wait_for(placed, what="three db pods Running")
        assert len({n for n, _ in got}) == 3  # one per node

        async def explained() -> str:
            p = await client.get(PODS, "db-3", "default")
            cond = next((c for c in (p.get("status") or {}).get("conditions") or []
                         if c["type"] == "PodScheduled"), {})
            return cond.get("message", "") if cond.get("reason") == "Unschedulable" else ""

        message = await wait_for(explained, what="db-3 Unschedulable")
        assert message.startswith("0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules.")

        async def event() -> bool:  # Events are written in the background, paced
            events = (await client.list(EVENTS, "default", field_selector="involvedObject.name=db-3"))["items"]
            return any(e["reason"] == "FailedScheduling" and "anti-affinity" in e["message"] for e in events)

        await wait_for(event, what="a FailedScheduling Event for db-3")
        # Each hollow node keeps its own lease.
        leases = (await client.list(LEASES, "kube-node-lease"))["items"]
        assert {lease["spec"]["holderIdentity"] for lease in leases} >= set(hollow.nodes)
        node = await client.get(NODES, "hollow-0")
        assert node["metadata"]["annotations"]["corral.dev/runtimes"] == "process"


async def test_runtime_class_must_be_offered(tmp_path):
    async with cluster(tmp_path, nodes=2) as (client, _, _):
        await client.create(PODS, pod("dockerized", runtimeClassName="docker"))

        async def message() -> str:
            p = await client.get(PODS, "dockerized", "default")
            return next((c.get("message", "") for c in (p.get("status") or {}).get("conditions") or []
                         if c["type"] == "PodScheduled"), "")

        text = await wait_for(message, what="runtime explanation")
        assert "2 node(s) didn't support runtime class \"docker\"" in text


async def test_preemption_evicts_lower_priority(tmp_path):
    async with cluster(tmp_path, nodes=2, cpu="1") as (client, _, _):
        await client.create(PCS, {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                                  "metadata": {"name": "high"}, "value": 1000})
        await client.create(PCS, {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                                  "metadata": {"name": "polite"}, "value": 1000, "preemptionPolicy": "Never"})
        for i in range(4):
            await client.create(PODS, pod(f"batch-{i}", cpu="500m"))

        async def all_running() -> bool:
            states = [await phase(client, f"batch-{i}") for i in range(4)]
            return all(p == "Running" for _, p in states)

        await wait_for(all_running, what="batch pods Running")
        await client.create(PODS, pod("polite", cpu="500m", priorityClassName="polite"))

        async def polite_message() -> str:
            p = await client.get(PODS, "polite", "default")
            return next((c.get("message", "") for c in (p.get("status") or {}).get("conditions") or []
                         if c["type"] == "PodScheduled"), "")

        assert (await wait_for(polite_message, what="polite explanation")).endswith(
            "preemption: not eligible due to preemptionPolicy=Never.")
        await client.delete(PODS, "polite", "default", grace_period_seconds=0)
        await client.create(PODS, pod("urgent", cpu="500m", priorityClassName="high"))

        async def nominated() -> str:
            p = await client.get(PODS, "urgent", "default")
            return (p.get("status") or {}).get("nominatedNodeName", "") or p["spec"].get("nodeName", "")

        node = await wait_for(nominated, what="urgent nominated")

        async def urgent_running() -> bool:
            return await phase(client, "urgent") == (node, "Running")

        await wait_for(urgent_running, what="urgent Running on its nominated node")
        left = [p["metadata"]["name"] for p in (await client.list(PODS, "default"))["items"]
                if p["metadata"]["name"].startswith("batch-")]
        assert len(left) == 3  # exactly one victim
        events = (await client.list(EVENTS, "default"))["items"]
        assert any(e["reason"] == "Preempted" for e in events)


async def test_hollow_nodes_renew_once_per_period_and_bring_pod_ranges(tmp_path):
    async with cluster(tmp_path, nodes=3) as (client, hollow, _):
        start = {name: node.renewals for name, node in hollow.nodes.items()}
        began = time.monotonic()
        await asyncio.sleep(3.2)
        elapsed = time.monotonic() - began
        for name, node in hollow.nodes.items():
            done = node.renewals - start[name]
            # One renewal per 1 s period (timer phase decides the edge).
            assert int(elapsed) - 1 <= done <= int(elapsed) + 1, (name, done)
        assert hollow.late_renewals == 0
        cidrs = {(await client.get(NODES, name))["spec"]["podCIDR"] for name in hollow.nodes}
        assert cidrs == {"100.64.0.0/24", "100.64.1.0/24", "100.64.2.0/24"}
