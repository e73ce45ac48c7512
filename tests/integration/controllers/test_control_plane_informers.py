"""The control plane of a server (cluster.ControlPlane): the controller
manager and the scheduler read through one set of informers, so the server
streams each pod event to it once, while each still writes under its own
name (the audit log tells them apart)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from corral.api.authz.node import NodeAuthorizer
from corral.client.resources import NODES, PODS, REPLICASETS
from corral.clock import RealClock, format_timestamp
from corral.cluster import ControlPlane
from corral.testing import running_server
from fixtures.agent_cluster import eventually

pytestmark = pytest.mark.timeout(120)


async def make_node(client: Any, name: str) -> None:
    node = await client.create(NODES, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
    now = format_timestamp(RealClock().now())
    node["status"] = {
        "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
        "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                        "lastHeartbeatTime": now, "lastTransitionTime": now}],
    }
    await client.replace_status(NODES, node)


def replicaset(replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                     {"name": "web", "image": "web:1", "resources": {"requests": {"cpu": "100m"}}}]}}},
    }


def audit(data_dir: Path) -> list[dict[str, Any]]:
    path = data_dir / "audit.log"
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()] if path.exists() else []


def all_pods(verb: str, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Requests for every pod of the cluster (no namespace, no selector), as informers make them."""
    return [e for e in events if e["verb"] == verb and e["requestURI"].startswith("/api/v1/pods")
            and "fieldSelector" not in e["requestURI"]]


async def test_one_pod_watch_serves_the_controllers_and_the_scheduler(tmp_path: Path) -> None:
    async with running_server(tmp_path) as server:
        client = server.client(user_agent="test-client")
        try:
            await make_node(client, "hollow-1")
            async with ControlPlane(server):
                await client.create(REPLICASETS, replicaset(3))

                async def bound() -> list[dict[str, Any]] | None:
                    pods, _ = await client.list_all(PODS, "default", label_selector="app=web")
                    return pods if len(pods) == 3 and all(p["spec"].get("nodeName") for p in pods) else None

                pods = await eventually(bound, what="3 pods made by the controllers, bound by the scheduler")
                assert {p["spec"]["nodeName"] for p in pods} == {"hollow-1"}
                # While it runs the server holds one pod watch for it (and
                # no other client here watches pods); the node authorizer's
                # graph follows the same dispatcher in-process, not as a watch.
                ctx = server.ctx
                assert ctx is not None
                rt = ctx.registry.lookup("", "v1", "pods")
                dispatcher = ctx.watch_fanout.dispatcher(ctx.store, rt)
                assert dispatcher is not None
                graph = [sub for sub in dispatcher.unindexed
                         if isinstance(getattr(getattr(sub, "_sink", None), "__self__", None), NodeAuthorizer)]
                assert len(graph) <= 1 and dispatcher.count - len(graph) == 1
            # A watch is audited when it ends: the control plane has stopped.
            events = await eventually(lambda: _ended_watches(server.options.data_dir), what="the watch audited")
        finally:
            await client.close()
    watches = all_pods("watch", events)
    assert [e["userAgent"] for e in watches] == ["corral-shared-informers"]
    assert [e["userAgent"] for e in all_pods("list", events)] == ["corral-shared-informers"]
    writers = {(e["userAgent"], e["verb"], e.get("objectRef", {}).get("subresource", ""))
               for e in events if e.get("objectRef", {}).get("resource") == "pods" and e["verb"] == "create"}
    assert ("corral-controller-manager", "create", "") in writers
    assert ("corral-scheduler", "create", "binding") in writers


async def _ended_watches(data_dir: Path) -> list[dict[str, Any]] | None:
    events = audit(data_dir)
    return events if all_pods("watch", events) else None
