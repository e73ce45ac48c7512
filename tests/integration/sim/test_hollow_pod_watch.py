"""Hollow nodes against the real API server: each node's own watch of its
pods (the default, as a kubelet's), its resumption when the server ends the
stream, and the shared watch kept as the cheaper option."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from corral.api.server import token_file
from corral.client import informer as informer_module
from corral.client.errors import ForbiddenError
from corral.client.resources import PODS
from corral.sim.cluster import HollowCluster
from corral.sim.hollow import NodeShape
from corral.sim.identity import HOLLOW_UID, ensure_node_tokens
from corral.testing import TestServer as Server  # not a test class
from corral.testing import running_server

pytestmark = pytest.mark.timeout(120)
NODES = 20


async def wait_until(check: Callable[[], Any], timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not (last := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}: last={last!r}")
        await asyncio.sleep(0.05)


def bound_pod(name: str, node: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x"}]}}


def pods_dispatcher(srv: Server) -> Any:
    ctx = srv.ctx
    assert ctx is not None
    rt = ctx.registry.lookup("", "v1", "pods")
    assert rt is not None
    return ctx.watch_fanout.dispatcher(ctx.store, rt)


def watchers(srv: Server) -> int:
    """Pod watchers other than the node authorizer's graph, which follows
    the same dispatcher (api/authz/node.py) without a field selector."""
    dispatcher = pods_dispatcher(srv)
    if dispatcher is None:
        return 0
    graph = sum(1 for sub in dispatcher.unindexed if not sub.flt.fields)
    assert graph <= 1
    return dispatcher.count - graph


@contextlib.asynccontextmanager
async def hollow_cluster(srv: Server, pod_watch: str,
                         node_tokens: dict[str, str] | None = None) -> AsyncIterator[HollowCluster]:
    hollow = HollowCluster(srv.url, token=srv.token, ca_file=str(srv.ca_file), count=NODES,
                           shape=NodeShape(cpu="4", memory="4Gi"), lease_period=30.0,
                           pod_watch=pod_watch, watch_starts=4, node_tokens=node_tokens)
    ready = asyncio.Event()
    task = asyncio.create_task(hollow.run(ready))
    try:
        await asyncio.wait_for(ready.wait(), 60)
        yield hollow
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def running_names(client: Any) -> set[str]:
    items, _ = await client.list_all(PODS, "default")
    return {p["metadata"]["name"] for p in items if (p.get("status") or {}).get("phase") == "Running"}


async def test_each_node_watches_exactly_its_own_pods(tmp_path):
    async with running_server(tmp_path) as srv, srv.client() as client, \
            hollow_cluster(srv, "per-node") as hollow:
        # One watcher per node, each filed under its own node name (a
        # node's watch follows its first list, so it may still be on its way).
        await wait_until(lambda: watchers(srv) == NODES, what="a watcher per node")
        dispatcher = pods_dispatcher(srv)
        groups = dispatcher.by_field["spec.nodeName"]
        assert set(groups) == set(hollow.nodes)
        assert all(len(g) == 1 for g in groups.values())
        # Node i gets i % 3 pods: some none, some several.
        expected = {name: {f"default/p-{i}-{k}" for k in range(i % 3)}
                    for i, name in enumerate(hollow.nodes)}
        for i, name in enumerate(hollow.nodes):
            for k in range(i % 3):
                await client.create(PODS, bound_pod(f"p-{i}-{k}", name), "default")
        wanted = {key.partition("/")[2] for keys in expected.values() for key in keys}
        names: set[str] = set()

        async def all_running() -> bool:
            nonlocal names
            names = await running_names(client)
            return names == wanted

        deadline = time.monotonic() + 30
        while not await all_running():
            assert time.monotonic() < deadline, f"running {len(names)}/{len(wanted)}"
            await asyncio.sleep(0.1)
        for name, informer in hollow.watches.items():
            assert set(informer.cache.keys()) == expected[name], name
            assert informer.lists == 1, name
        assert hollow.errors == 0


async def test_a_cut_watch_resumes_without_losing_events(tmp_path, monkeypatch):
    # The server ends every watch after 1-2 s (the client's timeoutSeconds).
    monkeypatch.setattr(informer_module, "WATCH_TIMEOUT_MIN", 1)
    async with running_server(tmp_path) as srv, srv.client() as client, \
            hollow_cluster(srv, "per-node") as hollow:
        starts = {name: 0 for name in hollow.nodes}
        for name, informer in hollow.watches.items():
            watch = informer.client.watch_batches  # what an informer watches with

            def counting(*args: Any, _name: str = name, _watch: Any = watch, **kwargs: Any) -> Any:
                starts[_name] += 1
                return _watch(*args, **kwargs)

            informer.client.watch_batches = counting  # type: ignore[method-assign]
        # Pods keep arriving while every node's watch is cut and resumed twice.
        created: set[str] = set()
        n = 0
        deadline = time.monotonic() + 30
        while min(starts.values()) < 2:
            assert time.monotonic() < deadline, f"watch restarts: {starts}"
            node = f"hollow-{n % NODES}"
            await client.create(PODS, bound_pod(f"q-{n}", node), "default")
            created.add(f"q-{n}")
            n += 1
            await asyncio.sleep(0.02)
        names: set[str] = set()
        deadline = time.monotonic() + 30
        while (names := await running_names(client)) != created:
            assert time.monotonic() < deadline, f"not running: {sorted(created - names)[:10]}"
            await asyncio.sleep(0.1)
        # Resumed from the resourceVersion each had: no re-list was needed.
        assert all(informer.lists == 1 for informer in hollow.watches.values())
        for i, (name, informer) in enumerate(hollow.watches.items()):
            assert set(informer.cache.keys()) == {f"default/q-{k}" for k in range(i, n, NODES)}, name


async def test_shared_watch_is_one_watcher_and_still_runs_pods(tmp_path):
    async with running_server(tmp_path) as srv, srv.client() as client, \
            hollow_cluster(srv, "shared") as hollow:
        await wait_until(lambda: watchers(srv) == 1, what="the shared watcher")
        dispatcher = pods_dispatcher(srv)
        assert "spec.nodeName" not in dispatcher.by_field
        assert hollow.watches == {}
        wanted = {f"s-{i}" for i in range(NODES)}
        for i in range(NODES):
            await client.create(PODS, bound_pod(f"s-{i}", f"hollow-{i}"), "default")
        deadline = time.monotonic() + 30
        while (names := await running_names(client)) != wanted:
            assert time.monotonic() < deadline, f"not running: {sorted(wanted - names)}"
            await asyncio.sleep(0.1)
        assert "pod_watch=shared" in hollow.stats()


async def test_nodes_log_in_as_themselves(tmp_path):
    """With tokens in the server's token file each hollow node is
    system:node:<name>: it registers, renews and runs its pods through the
    node authorizer, and is refused another node's pod."""
    async with running_server(tmp_path) as srv, srv.client() as client:
        path = token_file(srv.options.data_dir)
        tokens = ensure_node_tokens(path, (f"hollow-{i}" for i in range(NODES)))
        assert ensure_node_tokens(path, (f"hollow-{i}" for i in range(NODES))) == tokens  # reused
        assert path.read_text().count(HOLLOW_UID) == NODES
        async with hollow_cluster(srv, "per-node", tokens) as hollow:
            for i in range(NODES):
                await client.create(PODS, bound_pod(f"n-{i}", f"hollow-{i}"), "default")
            wanted = {f"n-{i}" for i in range(NODES)}
            deadline = time.monotonic() + 30
            while (names := await running_names(client)) != wanted:
                assert time.monotonic() < deadline, f"not running: {sorted(wanted - names)}"
                await asyncio.sleep(0.1)
            assert hollow.errors == 0
            with pytest.raises(ForbiddenError):
                await hollow.nodes["hollow-1"].client.patch(
                    PODS, "n-0", {"status": {"phase": "Failed"}}, "default", subresource="status")
        assert ensure_node_tokens(path, ["hollow-0"]) == {"hollow-0": tokens["hollow-0"]}
        assert path.read_text().count(HOLLOW_UID) == 1  # a smaller run drops the others' entries
        assert srv.token in path.read_text()  # the admin entry is kept
