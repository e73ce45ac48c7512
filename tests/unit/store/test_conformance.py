"""The Store contract, run against every backend in conftest.BACKENDS."""

from __future__ import annotations

import asyncio
import random

import pytest

from corral.store.protocol import (
    CompactedError,
    ConflictError,
    EventType,
    FutureRevisionError,
    KeyExistsError,
    KeyNotFoundError,
    KeyValue,
    Store,
    StoreUnavailableError,
    Watch,
    WatchEvent,
)

DEADLINE = 10.0


async def take(watch: Watch, count: int, timeout: float = DEADLINE) -> list[WatchEvent]:
    """The next ``count`` events, or fail after ``timeout``."""
    events: list[WatchEvent] = []

    async def pull() -> None:
        async for event in watch:
            events.append(event)
            if len(events) == count:
                return

    await asyncio.wait_for(pull(), timeout)
    return events


async def take_until(watch: Watch, revision: int, timeout: float = DEADLINE) -> list[WatchEvent]:
    events: list[WatchEvent] = []

    async def pull() -> None:
        async for event in watch:
            events.append(event)
            if event.kv.mod_revision >= revision:
                return

    await asyncio.wait_for(pull(), timeout)
    return events


def test_is_a_store(store: Store) -> None:
    assert isinstance(store, Store)


# -- single-key operations ----------------------------------------------------


async def test_create_then_get(store: Store) -> None:
    kv = await store.create("/registry/pods/default/web", b"v1")
    assert kv.key == "/registry/pods/default/web"
    assert kv.value == b"v1"
    assert kv.create_revision == kv.mod_revision > 0
    assert await store.get("/registry/pods/default/web") == kv
    assert await store.get("/registry/pods/default/missing") is None
    assert await store.current_revision() == kv.mod_revision


async def test_create_existing_key_fails_without_taking_a_revision(store: Store) -> None:
    kv = await store.create("/a", b"1")
    with pytest.raises(KeyExistsError) as info:
        await store.create("/a", b"2")
    assert info.value.key == "/a"
    assert await store.get("/a") == kv
    assert await store.current_revision() == kv.mod_revision
    nxt = await store.create("/b", b"1")
    assert nxt.mod_revision == kv.mod_revision + 1


async def test_update_compare_and_swap(store: Store) -> None:
    first = await store.create("/a", b"1")
    second = await store.update("/a", b"2", first.mod_revision)
    assert second.value == b"2"
    assert second.create_revision == first.create_revision
    assert second.mod_revision > first.mod_revision

    with pytest.raises(ConflictError) as info:
        await store.update("/a", b"3", first.mod_revision)
    assert info.value.expected == first.mod_revision
    assert info.value.current == second
    assert await store.get("/a") == second

    third = await store.update("/a", b"4", 0)  # unconditional
    assert third.value == b"4" and third.mod_revision > second.mod_revision


async def test_update_missing_key(store: Store) -> None:
    with pytest.raises(KeyNotFoundError):
        await store.update("/nope", b"1", 0)
    with pytest.raises(KeyNotFoundError):
        await store.update("/nope", b"1", 5)


async def test_delete(store: Store) -> None:
    kv = await store.create("/a", b"last")
    gone = await store.delete("/a")
    assert gone.key == "/a" and gone.value == b"last"
    assert gone.create_revision == kv.create_revision
    assert gone.mod_revision == kv.mod_revision + 1 == await store.current_revision()
    assert await store.get("/a") is None
    with pytest.raises(KeyNotFoundError):
        await store.delete("/a")
    again = await store.create("/a", b"new")
    assert again.create_revision == again.mod_revision > gone.mod_revision


async def test_delete_compare_and_swap(store: Store) -> None:
    kv = await store.create("/a", b"1")
    updated = await store.update("/a", b"2", kv.mod_revision)
    with pytest.raises(ConflictError) as info:
        await store.delete("/a", kv.mod_revision)
    assert info.value.current == updated
    gone = await store.delete("/a", updated.mod_revision)
    assert gone.value == b"2"


async def test_failed_operations_in_one_burst_do_not_affect_the_others(store: Store) -> None:
    await store.create("/dup", b"x")
    results = await asyncio.gather(
        store.create("/k1", b"1"),
        store.create("/dup", b"y"),
        store.update("/missing", b"1", 0),
        store.create("/k2", b"2"),
        return_exceptions=True,
    )
    assert isinstance(results[0], KeyValue)
    assert isinstance(results[1], KeyExistsError)
    assert isinstance(results[2], KeyNotFoundError)
    assert isinstance(results[3], KeyValue)
    # Failed operations take no revision; which success came first is the
    # backend's business (etcd orders concurrent requests as they arrive).
    revs = sorted([results[0].mod_revision, results[3].mod_revision])
    assert revs[1] == revs[0] + 1


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.create("", b"x"),
        lambda s: s.create("/a", "not bytes"),
        lambda s: s.update("/a", b"x", -1),
        lambda s: s.delete("/a", -3),
        lambda s: s.list("/", limit=-1),
        lambda s: s.list("/", revision=-1),
        lambda s: s.get("\ud800"),
    ],
    ids=["empty-key", "str-value", "neg-expected", "neg-delete", "neg-limit", "neg-rev", "surrogate"],
)
async def test_bad_input_is_a_clear_error(store: Store, call) -> None:
    with pytest.raises(ValueError, match=r"^(key|value|expected_revision|limit|revision):"):
        await call(store)


# -- list ---------------------------------------------------------------------


async def test_list_prefix_order_and_count(store: Store) -> None:
    for key in ["/p/b", "/p/a", "/pz", "/p/c", "/q/a", "/p"]:
        await store.create(key, key.encode())
    result = await store.list("/p/")
    assert [kv.key for kv in result.items] == ["/p/a", "/p/b", "/p/c"]
    assert result.revision == await store.current_revision()
    assert result.more is False
    assert await store.count("/p/") == 3
    assert await store.count("/") == 6
    assert [kv.key for kv in (await store.list("")).items] == sorted(
        ["/p/b", "/p/a", "/pz", "/p/c", "/q/a", "/p"]
    )
    assert (await store.list("/none/")).items == []


async def test_list_pagination(store: Store) -> None:
    keys = [f"/p/{i:03d}" for i in range(25)]
    for key in keys:
        await store.create(key, b"v")
    seen: list[str] = []
    after = ""
    pages = 0
    while True:
        page = await store.list("/p/", start_after=after, limit=10)
        seen += [kv.key for kv in page.items]
        pages += 1
        if not page.more:
            break
        after = page.items[-1].key
    assert seen == keys and pages == 3
    exact = await store.list("/p/", limit=25)
    assert len(exact.items) == 25 and exact.more is False


async def test_list_at_old_revision(store: Store) -> None:
    a1 = await store.create("/p/a", b"1")
    b1 = await store.create("/p/b", b"1")
    at = b1.mod_revision
    await store.update("/p/a", b"2", a1.mod_revision)
    await store.delete("/p/b")
    await store.create("/p/c", b"1")
    past = await store.list("/p/", revision=at)
    assert past.revision == at
    assert past.items == [a1, b1]
    first = await store.list("/p/", revision=a1.mod_revision)
    assert first.items == [a1]
    now = await store.list("/p/")
    assert [(kv.key, kv.value) for kv in now.items] == [("/p/a", b"2"), ("/p/c", b"1")]


async def test_list_future_revision(store: Store) -> None:
    kv = await store.create("/a", b"1")
    with pytest.raises(FutureRevisionError) as info:
        await store.list("/", revision=kv.mod_revision + 10)
    assert info.value.current == kv.mod_revision


async def test_pagination_is_consistent_while_writes_continue(store: Store) -> None:
    for i in range(60):
        await store.create(f"/p/{i:03d}", b"0")
    snapshot = await store.list("/p/")
    stop = asyncio.Event()

    async def churn() -> None:
        rng = random.Random(7)
        n = 0
        while not stop.is_set():
            i = rng.randrange(80)
            key = f"/p/{i:03d}"
            cur = await store.get(key)
            try:
                if cur is None:
                    await store.create(key, b"new")
                elif rng.random() < 0.3:
                    await store.delete(key, cur.mod_revision)
                else:
                    await store.update(key, f"{n}".encode(), cur.mod_revision)
            except (ConflictError, KeyExistsError, KeyNotFoundError):
                pass
            n += 1

    writer = asyncio.create_task(churn())
    try:
        items: list[KeyValue] = []
        after = ""
        while True:
            page = await store.list("/p/", revision=snapshot.revision, start_after=after, limit=7)
            assert page.revision == snapshot.revision
            items += page.items
            await asyncio.sleep(0.005)  # let the writer move on between pages
            if not page.more:
                break
            after = page.items[-1].key
    finally:
        stop.set()
        await writer
    assert await store.current_revision() > snapshot.revision
    assert items == snapshot.items


# -- compaction ---------------------------------------------------------------


async def test_compact_keeps_current_values_and_forgets_history(store: Store) -> None:
    a = await store.create("/p/a", b"1")
    b = await store.create("/p/b", b"1")
    await store.update("/p/a", b"2", a.mod_revision)
    await store.delete("/p/b", b.mod_revision)
    c = await store.create("/p/c", b"1")
    before = await store.list("/p/", revision=c.mod_revision)
    await store.compact(c.mod_revision)
    with pytest.raises(CompactedError) as info:
        await store.list("/p/", revision=c.mod_revision - 1)
    assert info.value.oldest >= c.mod_revision
    assert (await store.list("/p/", revision=c.mod_revision)).items == before.items
    assert (await store.list("/p/")).items == before.items
    assert await store.get("/p/a") == before.items[0]
    await store.compact(1)  # already compacted: nothing to do
    with pytest.raises(FutureRevisionError):
        await store.compact(c.mod_revision + 100)


async def test_automatic_compaction_keeps_about_history_limit(open_store) -> None:
    store = await open_store(history_limit=50)
    kv = await store.create("/p/a", b"0")
    for i in range(300):
        kv = await store.update("/p/a", str(i).encode(), kv.mod_revision)
    with pytest.raises(CompactedError):
        await store.list("/p/", revision=2)
    recent = await store.list("/p/", revision=kv.mod_revision - 10)
    assert recent.items[0].value == b"289"
    assert (await store.get("/p/a")) == kv


# -- watch --------------------------------------------------------------------


async def test_watch_replays_history_then_streams_live(store: Store) -> None:
    first = [await store.create(f"/p/{i}", b"0") for i in range(10)]
    start = first[4].mod_revision
    watch = store.watch("/p/", start)

    async def more_writes() -> int:
        last = 0
        for i in range(10, 40):
            last = (await store.create(f"/p/{i}", b"1")).mod_revision
            if i % 7 == 0:
                await asyncio.sleep(0)
        return last

    writer = asyncio.create_task(more_writes())
    try:
        last = await writer
        events = await take_until(watch, last)
    finally:
        await watch.close()
    revisions = [e.kv.mod_revision for e in events]
    assert revisions == list(range(start + 1, last + 1))
    assert all(e.type is EventType.PUT for e in events)


async def test_watch_sees_updates_and_deletes_with_prev(store: Store) -> None:
    a = await store.create("/p/a", b"1")
    watch = store.watch("/p/", a.mod_revision)
    b = await store.update("/p/a", b"2", a.mod_revision)
    gone = await store.delete("/p/a")
    events = await take(watch, 2)
    await watch.close()
    assert events[0] == WatchEvent(EventType.PUT, b, a)
    assert events[1].type is EventType.DELETE
    assert events[1].kv == gone
    assert events[1].kv.value == b"2"
    assert events[1].prev in (None, b)


async def test_watch_filters_by_prefix(store: Store) -> None:
    start = await store.current_revision()
    watch = store.watch("/p/", start)
    await store.create("/q/x", b"1")
    await store.create("/pz", b"1")
    mine = await store.create("/p/x", b"1")
    events = await take(watch, 1)
    await watch.close()
    assert [e.kv for e in events] == [mine]


async def test_watch_from_list_revision_has_no_gap_or_duplicate(store: Store) -> None:
    """The informer pattern: list, then watch from the list's revision while
    writers keep going."""
    stop = asyncio.Event()
    written: list[int] = []

    async def churn(w: int) -> None:
        i = 0
        while not stop.is_set():
            written.append((await store.create(f"/p/{w}/{i:05d}", b"x")).mod_revision)
            i += 1

    writers = [asyncio.create_task(churn(w)) for w in range(3)]
    try:
        while len(written) < 30:
            await asyncio.sleep(0.001)
        listed = await store.list("/p/")
        watch = store.watch("/p/", listed.revision)
        while len(written) < 120:
            await asyncio.sleep(0.001)
    finally:
        stop.set()
        await asyncio.gather(*writers)
    last = max(written)
    events = await take_until(watch, last)
    await watch.close()
    keys = {kv.key for kv in listed.items} | {e.kv.key for e in events}
    assert len(keys) == len(written)
    assert [e.kv.mod_revision for e in events] == list(range(listed.revision + 1, last + 1))


async def test_watch_from_compacted_revision(store: Store) -> None:
    for i in range(5):
        last = await store.create(f"/p/{i}", b"x")
    await store.compact(last.mod_revision - 1)
    watch = store.watch("/p/", 1)
    with pytest.raises(CompactedError) as info:
        await take(watch, 1)
    assert info.value.requested == 1
    await watch.close()
    ok = store.watch("/p/", last.mod_revision - 1)
    assert [e.kv for e in await take(ok, 1)] == [last]
    await ok.close()


async def test_slow_watcher_is_ended_not_buffered_forever(open_store) -> None:
    store = await open_store(watch_buffer=16)
    start = await store.current_revision()
    slow = store.watch("/p/", start)
    fast = store.watch("/p/", start)
    fast_events: list[WatchEvent] = []

    async def consume() -> None:
        async for event in fast:
            fast_events.append(event)
            if len(fast_events) == 100:
                return

    consumer = asyncio.create_task(consume())
    for i in range(100):
        await store.create(f"/p/{i}", b"x")
    await asyncio.wait_for(consumer, DEADLINE)
    with pytest.raises(CompactedError):
        await take(slow, 100)
    await slow.close()
    await fast.close()
    assert len(fast_events) == 100


async def test_many_concurrent_writers_get_unique_increasing_revisions(store: Store) -> None:
    start = await store.current_revision()

    async def writer(w: int) -> list[int]:
        revs = []
        for i in range(40):
            revs.append((await store.create(f"/w/{w}/{i}", b"x")).mod_revision)
        return revs

    per_writer = await asyncio.gather(*(writer(w) for w in range(25)))
    for revs in per_writer:
        assert revs == sorted(revs)
    every = sorted(r for revs in per_writer for r in revs)
    assert every == list(range(start + 1, start + 1 + 1000))
    assert await store.count("/w/") == 1000


async def test_watch_close_ends_iteration(store: Store) -> None:
    watch = store.watch("/p/", await store.current_revision())
    got: list[WatchEvent] = []

    async def consume() -> None:
        async for event in watch:
            got.append(event)

    task = asyncio.create_task(consume())
    await store.create("/p/a", b"1")
    await asyncio.sleep(0)
    await watch.close()
    await asyncio.wait_for(task, DEADLINE)
    assert len(got) <= 1


async def test_close_ends_watches_and_rejects_calls(open_store) -> None:
    store = await open_store()
    await store.create("/p/a", b"1")
    watches = [store.watch("/p/", 0) for _ in range(3)]
    counts = [0, 0, 0]

    async def consume(i: int) -> None:
        async for _ in watches[i]:
            counts[i] += 1

    tasks = [asyncio.create_task(consume(i)) for i in range(3)]
    pending = asyncio.create_task(store.create("/p/b", b"2"))
    while counts != [1, 1, 1] and not pending.done():
        await asyncio.sleep(0.001)
    await store.close()
    await asyncio.wait_for(asyncio.gather(*tasks), DEADLINE)
    assert (await pending).key == "/p/b"  # queued before close: committed, not dropped
    with pytest.raises(StoreUnavailableError):
        await store.create("/p/c", b"3")
    with pytest.raises(StoreUnavailableError):
        await store.get("/p/a")
    with pytest.raises(StoreUnavailableError):
        await store.list("/p/")
