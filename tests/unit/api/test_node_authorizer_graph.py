"""The node authorizer's pod graph: kept from the start where nodes are
served, and in a process that may serve none (lazy) not kept until a node
request needs it, which is then told to retry (429) rather than refused."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from corral.api.auth import User
from corral.api.authz.attributes import Attributes
from corral.api.authz.node import PODS, NodeAuthorizer
from corral.api.certs import NODE_GROUP, NODE_PREFIX
from corral.api.errors import TooManyRequests
from corral.store.sqlite import SqliteStore


def node_user(name: str) -> User:
    return User(f"{NODE_PREFIX}{name}", groups=(NODE_GROUP,))


def pod(name: str, node: str, secret: str) -> bytes:
    return orjson.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
                         "spec": {"nodeName": node, "containers": [{"name": "c", "image": "i"}],
                                  "volumes": [{"name": "s", "secret": {"secretName": secret}}]}})


def get_secret(node: str, name: str) -> Attributes:
    return Attributes(node_user(node), "get", True, namespace="default", resource="secrets", name=name)


def patch_status(node: str, name: str) -> Attributes:
    return Attributes(node_user(node), "patch", True, namespace="default", resource="pods",
                      subresource="status", name=name)


async def until_allowed(authz: NodeAuthorizer, attrs: Attributes, timeout: float = 5.0) -> bool:
    async with asyncio.timeout(timeout):
        while True:
            try:
                allowed, _ = authz.authorize(attrs)
            except TooManyRequests:
                await asyncio.sleep(0.01)
                continue
            if allowed:
                return True
            await asyncio.sleep(0.01)


async def test_the_graph_follows_pods_from_the_start(store: SqliteStore) -> None:
    await store.create(f"{PODS}default/a", pod("a", "n1", "s1"))
    authz = NodeAuthorizer(store)
    await authz.start()
    try:
        assert authz.authorize(get_secret("n1", "s1"))[0]
        assert not authz.authorize(get_secret("n2", "s1"))[0]
        await store.create(f"{PODS}default/b", pod("b", "n2", "s2"))
        assert await until_allowed(authz, patch_status("n2", "b"))
        assert not authz.authorize(patch_status("n1", "b"))[0]
    finally:
        await authz.stop()


async def test_a_lazy_authorizer_keeps_no_graph_until_a_node_needs_it(store: SqliteStore) -> None:
    await store.create(f"{PODS}default/a", pod("a", "n1", "s1"))
    authz = NodeAuthorizer(store, lazy=True)
    await authz.start()
    try:
        await asyncio.sleep(0.05)
        assert authz._task is None and not authz.loaded  # nothing listed, nothing followed
        # Decisions that need no graph are made at once.
        lease = Attributes(node_user("n1"), "update", True, namespace="kube-node-lease",
                           resource="leases", api_group="coordination.k8s.io", name="n1")
        assert authz.authorize(lease)[0]
        assert authz._task is None
        # The first that needs it is told to come back, never refused.
        with pytest.raises(TooManyRequests) as raised:
            authz.authorize(get_secret("n1", "s1"))
        assert raised.value.retry_after == 1
        assert await until_allowed(authz, get_secret("n1", "s1"))
        assert not authz.authorize(get_secret("n2", "s1"))[0]
        # From then on it follows the pods like an eager one.
        await store.create(f"{PODS}default/b", pod("b", "n2", "s2"))
        assert await until_allowed(authz, get_secret("n2", "s2"))
    finally:
        await authz.stop()


def test_graph_after_repeated_and_changed_pods_equals_a_fresh_one() -> None:
    """A put that changes neither node nor references is skipped; the graph
    must still be the one built from the latest version of each pod."""
    from corral.api.authz.node import NodeGraph

    versions = [
        ("a", "n1", "s1"), ("a", "n1", "s1"), ("b", "n1", "s1"), ("a", "n1", "s2"),
        ("b", "n2", "s1"), ("c", "", "s3"), ("c", "n2", "s3"), ("c", "n2", "s3"), ("a", "", "s2"),
    ]
    graph, latest = NodeGraph(), {}
    for name, node, secret in versions:
        obj = orjson.loads(pod(name, node, secret))
        graph.put(obj)
        latest[name] = obj
        fresh = NodeGraph()
        for p in latest.values():
            fresh.put(p)
        assert graph.pod_node == fresh.pod_node
        assert {n: +c for n, c in graph.node_refs.items() if +c} == {n: +c for n, c in fresh.node_refs.items() if +c}
    assert graph.node_uses("n2", ("secrets", "default", "s3"))
    assert not graph.node_uses("n1", ("secrets", "default", "s2"))


async def test_a_pod_bound_before_the_graph_saw_it_is_confirmed_from_the_store(store: SqliteStore) -> None:
    """The graph lags the store; a node acting on a pod it just saw bound is
    judged on the stored pod, and only for its own pods."""
    authz = NodeAuthorizer(store)
    await authz._relist()  # loaded, but not following: every later write is unseen
    await store.create(f"{PODS}default/late", pod("late", "n1", "s1"))
    attrs = patch_status("n1", "late")
    assert not authz.authorize(attrs)[0]
    assert await authz.confirm_pod(attrs)
    assert await authz.confirm_pod(Attributes(node_user("n1"), "get", True, namespace="default",
                                              resource="pods", name="late"))
    assert not await authz.confirm_pod(patch_status("n2", "late"))  # bound elsewhere
    assert not await authz.confirm_pod(patch_status("n1", "missing"))
    assert not await authz.confirm_pod(get_secret("n1", "s1"))  # only pods are confirmed live
    assert not await authz.confirm_pod(Attributes(node_user("n1"), "update", True, namespace="default",
                                                  resource="pods", name="late"))  # not a status write
    assert not await authz.confirm_pod(Attributes(User("alice"), "get", True, namespace="default",
                                                  resource="pods", name="late"))


async def test_the_graph_follows_the_fanouts_pod_stream_not_a_store_watch_of_its_own(store: SqliteStore) -> None:
    """Pod watchers and the graph share one dispatcher (one store watch, one
    decode per change); the graph learns a bind in the same turn of the
    loop as the watchers are handed it."""
    from corral.api.authz.node import _pod_kind
    from corral.api.fanout import WatchFanout
    from corral.api.listwatch import Filter

    fanout, pods = WatchFanout(), _pod_kind()
    await store.create(f"{PODS}default/a", pod("a", "n1", "s1"))
    authz = NodeAuthorizer(store, fanout=fanout, pods=pods)
    await authz.start()
    watcher = None
    try:
        async with asyncio.timeout(5):
            while (dispatcher := fanout.dispatcher(store, pods)) is None or dispatcher.count < 1:
                await asyncio.sleep(0.01)
        watcher = await fanout.subscribe(store, pods, "default", Filter([], []), authz.revision)
        assert dispatcher.count == 2 and fanout.dispatcher(store, pods) is dispatcher
        await store.create(f"{PODS}default/b", pod("b", "n2", "s2"))
        async with asyncio.timeout(5):
            event = await anext(aiter(watcher))
        assert event.object["metadata"]["name"] == "b"
        assert authz.authorize(patch_status("n2", "b"))[0]  # no later than the watcher saw it
        assert authz.authorize(get_secret("n2", "s2"))[0]
        await store.delete(f"{PODS}default/b")
        assert await until_refused(authz, get_secret("n2", "s2"))
        assert authz.authorize(get_secret("n1", "s1"))[0]
    finally:
        if watcher is not None:
            await watcher.aclose()
        await authz.stop()


async def test_a_graph_behind_the_stores_history_relists(store: SqliteStore) -> None:
    """Resuming from a revision the store has compacted away is a 410: the
    graph re-lists and follows on from the fresh list."""
    await store.create(f"{PODS}default/a", pod("a", "n1", "s1"))
    authz = NodeAuthorizer(store)
    await authz._relist()
    created = await store.create(f"{PODS}default/b", pod("b", "n2", "s2"))
    await store.update(f"{PODS}default/b", pod("b", "n2", "s3"), created.mod_revision)
    await store.compact(await store.current_revision())
    relists = 0
    relist = authz._relist

    async def counted() -> None:
        nonlocal relists
        relists += 1
        await relist()

    authz._relist = counted  # type: ignore[method-assign]
    authz._task = asyncio.create_task(authz._follow())
    try:
        assert await until_allowed(authz, get_secret("n2", "s3"))
        assert relists == 1
        assert not authz.authorize(get_secret("n2", "s2"))[0]
        await store.create(f"{PODS}default/c", pod("c", "n3", "s4"))
        assert await until_allowed(authz, get_secret("n3", "s4"))
    finally:
        await authz.stop()


async def until_refused(authz: NodeAuthorizer, attrs: Attributes, timeout: float = 5.0) -> bool:
    async with asyncio.timeout(timeout):
        while authz.authorize(attrs)[0]:
            await asyncio.sleep(0.01)
    return True
