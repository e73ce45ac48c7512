"""ControllerManager + Scheduler against the real API server, with hollow
nodes whose "agent" is a small loop in this test: it marks bound pods
Running/Ready and confirms graceful deletions, as a real agent would."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from corral.client.errors import NotFoundError
from corral.client.informer import Informer
from corral.client.resources import DEPLOYMENTS, EVENTS, NAMESPACES, NODES, PODS, REPLICASETS
from corral.clock import RealClock, format_timestamp
from corral.controllers.manager import ControllerManager
from corral.scheduler.scheduler import Scheduler
from corral.testing import running_server

pytestmark = pytest.mark.timeout(120)


async def wait_for(check: Callable[[], Awaitable[Any]], timeout: float = 30.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what or check}: last={last!r}")


async def make_node(client, name: str, cpu: str = "4") -> None:
    node = await client.create(NODES, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
    node["status"] = {
        "capacity": {"cpu": cpu, "memory": "8Gi", "pods": "110"},
        "allocatable": {"cpu": cpu, "memory": "8Gi", "pods": "110"},
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                        "lastHeartbeatTime": format_timestamp(RealClock().now()),
                        "lastTransitionTime": format_timestamp(RealClock().now())}],
    }
    await client.replace_status(NODES, node)


class HollowAgent:
    """Plays the node agent for pods bound to our hollow nodes."""

    def __init__(self, client) -> None:
        self.client = client
        self.informer = Informer(client, PODS)
        self.work: asyncio.Queue[dict] = asyncio.Queue()
        self.informer.add_handler(on_add=self.work.put_nowait,
                                  on_update=lambda old, new: self.work.put_nowait(new))

    async def run(self) -> None:
        runner = asyncio.create_task(self.informer.run())
        try:
            while True:
                pod = await self.work.get()
                with contextlib.suppress(Exception):
                    await self._handle(pod)
        finally:
            runner.cancel()

    async def _handle(self, pod: dict) -> None:
        md, spec = pod["metadata"], pod.get("spec") or {}
        if not spec.get("nodeName"):
            return
        if md.get("deletionTimestamp"):
            with contextlib.suppress(NotFoundError):
                await self.client.delete(PODS, md["name"], md["namespace"], grace_period_seconds=0)
            return
        if (pod.get("status") or {}).get("phase") == "Running":
            return
        now = format_timestamp(RealClock().now())
        status = {"phase": "Running", "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
            {"type": "Ready", "status": "True", "lastTransitionTime": now},
            {"type": "ContainersReady", "status": "True", "lastTransitionTime": now}]}
        await self.client.patch(PODS, md["name"], {"status": status}, md["namespace"],
                                subresource="status")


@pytest.fixture
async def cluster(tmp_path):
    async with running_server(tmp_path) as srv:
        client = srv.client()
        await make_node(client, "hollow-1")
        await make_node(client, "hollow-2")
        tasks = [asyncio.create_task(c.run()) for c in
                 (ControllerManager(client), Scheduler(client), HollowAgent(client))]
        try:
            yield client
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await client.close()


def deployment(image: str = "web:1", replicas: int = 3) -> dict:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                {"name": "web", "image": image, "resources": {"requests": {"cpu": "100m"}}}]}},
        },
    }


async def web_pods(client) -> list[dict]:
    items, _ = await client.list_all(PODS, "default", label_selector="app=web")
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


async def rollout_done(client, replicas: int) -> dict | None:
    d = await client.get(DEPLOYMENTS, "web", "default")
    st = d.get("status") or {}
    done = (st.get("observedGeneration", 0) >= d["metadata"]["generation"]
            and st.get("updatedReplicas") == replicas and st.get("replicas") == replicas
            and st.get("availableReplicas") == replicas)
    return d if done else None


async def test_deployment_lifecycle(cluster):
    client = cluster
    await client.create(DEPLOYMENTS, deployment())
    d = await wait_for(lambda: rollout_done(client, 3), what="3 replicas available")
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    conds = {c["type"]: c for c in d["status"]["conditions"]}
    assert conds["Available"]["status"] == "True"
    assert conds["Progressing"]["reason"] == "NewReplicaSetAvailable"
    pods = await web_pods(client)
    assert len(pods) == 3 and all(p["spec"]["nodeName"] in ("hollow-1", "hollow-2") for p in pods)
    rs_name = pods[0]["metadata"]["ownerReferences"][0]["name"]
    assert rs_name.startswith("web-") and pods[0]["metadata"]["name"].startswith(rs_name + "-")
    assert "pod-template-hash" in pods[0]["metadata"]["labels"]

    # kubectl scale
    await client.patch(DEPLOYMENTS, "web", {"spec": {"replicas": 5}}, "default", subresource="scale")
    await wait_for(lambda: rollout_done(client, 5), what="scaled to 5")

    # rollout to a new template
    await client.patch(DEPLOYMENTS, "web", {"spec": {"template": {"spec": {"containers": [
        {"name": "web", "image": "web:2", "resources": {"requests": {"cpu": "100m"}}}]}}}}, "default",
        patch_type="strategic")
    d = await wait_for(lambda: rollout_done(client, 5), what="rollout to web:2")
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    rses, _ = await client.list_all(REPLICASETS, "default")
    by_name = {r["metadata"]["name"]: r for r in rses}
    assert len(rses) == 2 and by_name[rs_name]["spec"]["replicas"] == 0
    assert all(p["spec"]["containers"][0]["image"] == "web:2" for p in await web_pods(client))

    # rollout undo: kubectl patches the old template back
    old_template = dict(by_name[rs_name]["spec"]["template"])
    old_template["metadata"] = {"labels": {"app": "web"}}
    await client.patch(DEPLOYMENTS, "web", [{"op": "replace", "path": "/spec/template", "value": old_template}],
                       "default", patch_type="json")
    d = await wait_for(lambda: rollout_done(client, 5), what="undo")
    rs = await client.get(REPLICASETS, rs_name, "default")
    assert rs["spec"]["replicas"] == 5
    assert rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
    assert len((await client.list_all(REPLICASETS, "default"))[0]) == 2

    # cascading (background) delete
    await client.delete(DEPLOYMENTS, "web", "default", propagation_policy="Background")

    async def all_gone() -> bool:
        rses, _ = await client.list_all(REPLICASETS, "default")
        pods, _ = await client.list_all(PODS, "default")
        return not rses and not pods

    await wait_for(all_gone, what="replica sets and pods deleted")


async def test_unschedulable_pod_reports_why(cluster):
    client = cluster
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "huge", "namespace": "default"},
           "spec": {"containers": [{"name": "c", "image": "x", "resources": {"requests": {"cpu": "64"}}}]}}
    await client.create(PODS, pod)

    async def condition() -> dict | None:
        p = await client.get(PODS, "huge", "default")
        return next((c for c in (p.get("status") or {}).get("conditions") or []
                     if c["type"] == "PodScheduled" and c["status"] == "False"), None)

    cond = await wait_for(condition, what="PodScheduled=False")
    assert cond["reason"] == "Unschedulable"
    assert cond["message"] == (
        "0/2 nodes are available: 2 Insufficient cpu. "
        "preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod.")

    async def event() -> list[dict]:
        items, _ = await client.list_all(
            EVENTS, "default", field_selector="involvedObject.name=huge")
        return [e for e in items if e.get("reason") == "FailedScheduling"]

    assert (await wait_for(event, what="FailedScheduling event"))[0]["type"] == "Warning"
    # a bigger node appears: the pod is retried at once and lands there
    await make_node(client, "hollow-big", cpu="128")

    async def bound() -> str | None:
        return (await client.get(PODS, "huge", "default"))["spec"].get("nodeName")

    assert await wait_for(bound, what="binding to the big node") == "hollow-big"


async def test_foreground_and_orphan_delete(cluster):
    client = cluster
    await client.create(DEPLOYMENTS, deployment(replicas=2))
    await wait_for(lambda: rollout_done(client, 2), what="2 available")
    await client.delete(DEPLOYMENTS, "web", "default", propagation_policy="Orphan")

    async def orphaned() -> bool:
        rses, _ = await client.list_all(REPLICASETS, "default")
        with contextlib.suppress(NotFoundError):
            await client.get(DEPLOYMENTS, "web", "default")
            return False
        return len(rses) == 1 and not rses[0]["metadata"].get("ownerReferences")

    await wait_for(orphaned, what="orphaned replica set")
    rs_name = (await client.list_all(REPLICASETS, "default"))[0][0]["metadata"]["name"]
    await client.delete(REPLICASETS, rs_name, "default", propagation_policy="Foreground")

    async def gone() -> bool:
        pods = await web_pods(client)
        rses, _ = await client.list_all(REPLICASETS, "default")
        return not rses and not pods

    await wait_for(gone, what="foreground deletion")


async def test_namespace_deletion_empties_it(cluster):
    client = cluster
    await client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "tmp"}})
    d = deployment(replicas=1)
    d["metadata"]["namespace"] = "tmp"
    await client.create(DEPLOYMENTS, d)

    async def has_pod() -> bool:
        items, _ = await client.list_all(PODS, "tmp")
        return bool(items)

    await wait_for(has_pod, what="pod in tmp")
    await client.delete(NAMESPACES, "tmp")

    async def ns_gone() -> bool:
        try:
            await client.get(NAMESPACES, "tmp")
        except NotFoundError:
            return True
        return False

    await wait_for(ns_gone, timeout=40, what="namespace tmp gone")





async def test_replicaset_adopts_an_orphan_and_releases_a_relabelled_pod(cluster):
    """The ReplicaSet sees its own pods and the namespace's orphans (an index
    per controller uid, not a scan of the namespace): a matching bare pod is
    adopted instead of a new one being created, and a pod relabelled out of
    the selector is released and replaced."""
    client = cluster
    labels = {"app": "adoptee"}
    await client.create(PODS, {"apiVersion": "v1", "kind": "Pod",
                               "metadata": {"name": "stray", "namespace": "default", "labels": labels},
                               "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
    rs = await client.create(REPLICASETS, {
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "adopter", "namespace": "default"},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}})
    uid = rs["metadata"]["uid"]

    def owner(pod: dict) -> str | None:
        refs = [r for r in pod["metadata"].get("ownerReferences") or [] if r.get("controller")]
        return refs[0]["uid"] if refs else None

    async def adopted() -> bool:
        return owner(await client.get(PODS, "stray", "default")) == uid

    await wait_for(adopted, what="the stray pod adopted")
    pods, _ = await client.list_all(PODS, "default", label_selector="app=adoptee")
    assert [p["metadata"]["name"] for p in pods] == ["stray"]

    await client.patch(PODS, "stray", {"metadata": {"labels": {"app": "elsewhere"}}}, "default")

    async def released_and_replaced() -> bool:
        stray = await client.get(PODS, "stray", "default")
        mine, _ = await client.list_all(PODS, "default", label_selector="app=adoptee")
        return owner(stray) is None and len(mine) == 1 and owner(mine[0]) == uid

    await wait_for(released_and_replaced, what="the relabelled pod released and replaced")


async def test_dangling_owner_references_are_collected(cluster):
    """A pod whose owner does not exist goes, whether it came with the
    reference or gained it by an update; a status write alone (no reference
    change) leaves a pod whose owner is alive alone."""
    client = cluster
    ghost = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "ghost",
             "uid": "00000000-0000-4000-8000-00000000dead", "controller": True}
    body = {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "born-orphan", "ownerReferences": [ghost]},
            "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "60"]}]}}
    await client.create(PODS, body, "default")
    late = {**body, "metadata": {"name": "late-orphan"}}
    await client.create(PODS, late, "default")
    await client.create(REPLICASETS, {
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "owner"},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "owner"}},
                 "template": {"metadata": {"labels": {"app": "owner"}},
                              "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}, "default")
    rs = await client.get(REPLICASETS, "owner", "default")
    alive = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "owner",
             "uid": rs["metadata"]["uid"]}
    kept = {**body, "metadata": {"name": "kept", "ownerReferences": [alive]}}
    await client.create(PODS, kept, "default")
    await client.patch(PODS, "late-orphan", {"metadata": {"ownerReferences": [ghost]}}, "default")

    async def gone(name: str) -> bool:
        try:
            pod = await client.get(PODS, name, "default")
        except NotFoundError:
            return True
        return bool(pod["metadata"].get("deletionTimestamp"))

    await wait_for(lambda: gone("born-orphan"), what="the pod created with a dangling owner collected")
    await wait_for(lambda: gone("late-orphan"), what="the pod given a dangling owner collected")
    pod = await client.get(PODS, "kept", "default")
    assert not pod["metadata"].get("deletionTimestamp")
