"""Indexed watch dispatch (api/fanout.py, api/watchsub.py): an event reaches
only the watchers registered under the object's old or new value of their
pinned field (or namespace), transitions in and out of a field-selected set
arrive as ADDED and DELETED, and resuming, overflow and compaction keep
their store-watch semantics."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from corral.api.codec import encode
from corral.api.fanout import Subscription, WatchFanout
from corral.api.listwatch import Filter
from corral.api.selectors import parse_field_selector, parse_label_selector
from corral.api.watchsub import ApiEvent
from corral.resources.builtin import build_registry
from corral.resources.types import ResourceType
from corral.store.protocol import CompactedError
from corral.store.sqlite import SqliteStore

REGISTRY = build_registry()
PODS = REGISTRY.lookup("", "v1", "pods")


def pod(name: str, node: str = "", ns: str = "default", labels: dict[str, str] | None = None) -> bytes:
    return encode({"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": name, "namespace": ns, "labels": labels or {}},
                   "spec": {"nodeName": node, "containers": [{"name": "c", "image": "i"}]}})


def flt(fields: str = "", labels: str = "") -> Filter:
    return Filter(parse_label_selector(labels), parse_field_selector(fields))


async def put(store: SqliteStore, name: str, node: str = "", ns: str = "default", **kw: Any) -> int:
    key = PODS.key(ns, name)
    current = await store.get(key)
    if current is None:
        return (await store.create(key, pod(name, node, ns, **kw))).mod_revision
    return (await store.update(key, pod(name, node, ns, **kw), current.mod_revision)).mod_revision


async def drain(sub: Subscription, want: int, timeout: float = 5.0) -> list[tuple[str, str]]:
    """The next ``want`` events as (type, name)."""
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < want:
        event = await asyncio.wait_for(anext(sub), max(0.01, deadline - time.monotonic()))
        out.append((event.type, event.object["metadata"]["name"]))
    return out


async def quiet(sub: Subscription) -> None:
    """Nothing more is queued for ``sub`` once the dispatcher caught up."""
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(anext(sub), 0.2)


async def caught_up(fanout: WatchFanout, store: SqliteStore, rt: ResourceType = PODS) -> None:
    target = await store.current_revision()
    deadline = time.monotonic() + 5
    while (d := fanout.dispatcher(store, rt)) is None or (d.last or 0) < target:
        assert time.monotonic() < deadline, "dispatcher did not catch up"
        await asyncio.sleep(0.01)


async def subscribe(fanout: WatchFanout, store: SqliteStore, fields: str = "", labels: str = "",
                    ns: str | None = None, after: int | None = None) -> Subscription:
    start = await store.current_revision() if after is None else after
    return await fanout.subscribe(store, PODS, ns, flt(fields, labels), start)


async def test_a_pod_write_is_offered_only_to_its_nodes_watcher(store: SqliteStore) -> None:
    fanout = WatchFanout()
    subs = [await subscribe(fanout, store, f"spec.nodeName=node-{i}") for i in range(300)]
    for i in range(30):
        await put(store, f"p{i}", f"node-{i * 7}")
    await caught_up(fanout, store)
    dispatcher = fanout.dispatcher(store, PODS)
    assert dispatcher is not None and dispatcher.dispatched == 30  # not 30 x 300
    for i in range(30):
        assert await drain(subs[i * 7], 1) == [("ADDED", f"p{i}")]
    await quiet(subs[1])
    for sub in subs:
        await sub.aclose()
    assert dispatcher.count == 0 and not dispatcher.by_field


async def test_moving_in_and_out_of_a_field_selected_set(store: SqliteStore) -> None:
    fanout = WatchFanout()
    a = await subscribe(fanout, store, "spec.nodeName=a")
    b = await subscribe(fanout, store, "spec.nodeName=b")
    pending = await subscribe(fanout, store, "spec.nodeName=")
    await put(store, "web")  # unbound
    await put(store, "web", "a")  # bound to a: leaves the unbound set
    await put(store, "web", "a", labels={"x": "1"})
    await put(store, "web", "b")  # moved: leaves a, enters b
    await store.delete(PODS.key("default", "web"))
    assert await drain(pending, 2) == [("ADDED", "web"), ("DELETED", "web")]
    assert await drain(a, 3) == [("ADDED", "web"), ("MODIFIED", "web"), ("DELETED", "web")]
    assert await drain(b, 2) == [("ADDED", "web"), ("DELETED", "web")]
    dispatcher = fanout.dispatcher(store, PODS)
    assert dispatcher is not None and dispatcher.dispatched == 1 + 2 + 1 + 2 + 1
    for sub in (a, b, pending):
        await quiet(sub)


async def test_a_leaving_event_carries_the_new_object(store: SqliteStore) -> None:
    fanout = WatchFanout()
    a = await subscribe(fanout, store, "spec.nodeName=a")
    await put(store, "web", "a")
    rev = await put(store, "web", "b")
    await drain(a, 1)
    event: ApiEvent = await asyncio.wait_for(anext(a), 5)
    assert event.type == "DELETED" and event.revision == rev
    assert event.object["spec"]["nodeName"] == "b"


async def test_namespace_scoped_watchers_pay_only_for_their_namespace(store: SqliteStore) -> None:
    fanout = WatchFanout()
    subs = {ns: await subscribe(fanout, store, ns=ns) for ns in ("a", "b", "c")}
    everything = await subscribe(fanout, store)
    await put(store, "x", ns="a")
    await put(store, "y", ns="b")
    await put(store, "y", "n1", ns="b")
    assert await drain(subs["a"], 1) == [("ADDED", "x")]
    assert await drain(subs["b"], 2) == [("ADDED", "y"), ("MODIFIED", "y")]
    assert await drain(everything, 3) == [("ADDED", "x"), ("ADDED", "y"), ("MODIFIED", "y")]
    dispatcher = fanout.dispatcher(store, PODS)
    assert dispatcher is not None and dispatcher.dispatched == 3 + 3
    await quiet(subs["c"])


async def test_field_index_within_a_namespace_and_a_name(store: SqliteStore) -> None:
    fanout = WatchFanout()
    in_a = await subscribe(fanout, store, "spec.nodeName=n", ns="a")
    named = await subscribe(fanout, store, "metadata.name=p")
    await put(store, "p", "n", ns="b")
    await put(store, "q", "n", ns="a")
    assert await drain(in_a, 1) == [("ADDED", "q")]
    assert await drain(named, 1) == [("ADDED", "p")]
    await quiet(in_a)
    await quiet(named)


async def test_unindexed_selectors_still_match(store: SqliteStore) -> None:
    fanout = WatchFanout()
    bound = await subscribe(fanout, store, "spec.nodeName!=")
    labelled = await subscribe(fanout, store, labels="app=web")
    await put(store, "p", "")
    await put(store, "p", "n")
    await put(store, "q", "", labels={"app": "web"})
    await put(store, "q", "", labels={"app": "db"})
    assert await drain(bound, 1) == [("ADDED", "p")]
    assert await drain(labelled, 2) == [("ADDED", "q"), ("DELETED", "q")]


async def test_resuming_from_an_older_revision_replays_then_goes_live(store: SqliteStore) -> None:
    fanout = WatchFanout()
    keep = await subscribe(fanout, store, "spec.nodeName=other")  # starts the dispatcher
    start = await store.current_revision()
    await put(store, "p1", "n")
    await put(store, "p2", "m")
    await put(store, "p3", "n")
    await caught_up(fanout, store)
    resumed = await subscribe(fanout, store, "spec.nodeName=n", after=start)
    await put(store, "p4", "n")
    assert await drain(resumed, 3) == [("ADDED", "p1"), ("ADDED", "p3"), ("ADDED", "p4")]
    await quiet(resumed)
    await quiet(keep)


async def test_before_the_dispatchers_start_a_watcher_reads_the_store_itself(store: SqliteStore) -> None:
    fanout = WatchFanout()
    await put(store, "early", "n")
    sub = await subscribe(fanout, store, "spec.nodeName=n", after=0)
    await put(store, "late", "n")
    assert await drain(sub, 2) == [("ADDED", "early"), ("ADDED", "late")]


async def test_a_compacted_revision_is_an_error(store: SqliteStore) -> None:
    fanout = WatchFanout()
    await subscribe(fanout, store, "spec.nodeName=x")
    await put(store, "p1", "n")
    await put(store, "p2", "n")
    await caught_up(fanout, store)
    await store.compact(await store.current_revision())
    sub = await subscribe(fanout, store, "spec.nodeName=n", after=1)
    with pytest.raises(CompactedError):
        await asyncio.wait_for(anext(sub), 5)


async def test_a_watcher_that_falls_behind_ends_with_compacted(store: SqliteStore, monkeypatch) -> None:
    monkeypatch.setattr("corral.api.watchsub.BUFFER", 5)
    fanout = WatchFanout()
    slow = await subscribe(fanout, store, "spec.nodeName=n")
    other = await subscribe(fanout, store, "spec.nodeName=m")
    for i in range(8):
        await put(store, f"p{i}", "n")
    await put(store, "q", "m")
    assert await drain(other, 1) == [("ADDED", "q")]
    with pytest.raises(CompactedError):
        await asyncio.wait_for(anext(slow), 5)


async def test_a_caught_up_watcher_is_written_to_directly(store: SqliteStore) -> None:
    fanout = WatchFanout()
    sub = await subscribe(fanout, store, "spec.nodeName=n")
    got: list[str] = []
    accept = True

    def sink(event: ApiEvent) -> bool:
        if accept:
            got.append(event.object["metadata"]["name"])
        return accept

    assert sub.attach(sink)
    await put(store, "p1", "n")
    await put(store, "p2", "n")
    await caught_up(fanout, store)
    assert got == ["p1", "p2"]
    accept = False  # a full connection: events queue for the watch's own task
    await put(store, "p3", "n")
    await put(store, "p4", "n")
    assert await drain(sub, 2) == [("ADDED", "p3"), ("ADDED", "p4")]
    assert got == ["p1", "p2"]


async def test_initial_events_come_first_and_block_the_sink(store: SqliteStore) -> None:
    fanout = WatchFanout()
    initial = [ApiEvent("ADDED", {"metadata": {"name": "listed"}}, 1)]
    sub = await fanout.subscribe(store, PODS, None, flt(), await store.current_revision(), initial=initial)
    assert not sub.attach(lambda e: True)
    await put(store, "live")
    assert await drain(sub, 2) == [("ADDED", "listed"), ("ADDED", "live")]


async def test_store_close_ends_every_watcher(store: SqliteStore) -> None:
    fanout = WatchFanout()
    sub = await subscribe(fanout, store, "spec.nodeName=n")
    await store.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(anext(sub), 5)
    assert fanout.dispatcher(store, PODS) is None


async def test_a_caught_up_watchers_progress_follows_the_resource(store: SqliteStore) -> None:
    fanout = WatchFanout()
    start = await store.current_revision()
    sub = await subscribe(fanout, store, "spec.nodeName=n")
    assert sub.progress() == start
    await put(store, "mine", "n")
    newest = await put(store, "other", "m")
    await caught_up(fanout, store)
    assert sub.progress() < newest  # its own event is still queued
    assert await drain(sub, 1) == [("ADDED", "mine")]
    assert sub.progress() == newest
