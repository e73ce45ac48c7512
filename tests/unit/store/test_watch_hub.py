"""The watch fan-out's own logic, without a database behind it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from corral.store.protocol import CompactedError, EventType, KeyValue, WatchEvent
from corral.store.sqlite import SqliteStore
from corral.store.watch import EventRing, ReplaySource, WatchHub


def put(key: str, rev: int) -> WatchEvent:
    return WatchEvent(EventType.PUT, KeyValue(key, b"v", rev, rev))


def test_ring_keeps_the_newest_and_tracks_its_floor() -> None:
    ring = EventRing(3, floor=10)
    assert ring.covers(10) and not ring.covers(9)
    ring.extend([put("/a/1", 11), put("/b/1", 12), put("/a/2", 13), put("/a/3", 14)])
    assert ring.floor == 11
    assert not ring.covers(10) and ring.covers(11)
    assert [e.kv.mod_revision for e in ring.between("/a/", 11, 14)] == [13, 14]
    assert [e.kv.mod_revision for e in ring.between("", 12, 13)] == [13]
    with pytest.raises(ValueError, match="capacity"):
        EventRing(0, 0)


def hub_with(history: list[WatchEvent], buffer: int = 100) -> WatchHub:
    revision = history[-1].kv.mod_revision if history else 0
    return WatchHub(revision, buffer, asyncio.get_running_loop().create_future)


def replay_from(history: list[WatchEvent]) -> ReplaySource:
    async def source(prefix: str, after: int, upto: int) -> AsyncIterator[list[WatchEvent]]:
        yield [e for e in history
               if after < e.kv.mod_revision <= upto and e.kv.key.startswith(prefix)]
    return source


async def collect(watch, count: int) -> list[int]:
    out: list[int] = []
    async for event in watch:
        out.append(event.kv.mod_revision)
        if len(out) == count:
            break
    return out


async def test_replay_then_live_without_overlap() -> None:
    history = [put("/a/x", r) for r in range(1, 6)]
    hub = hub_with(history)
    watch = hub.subscribe("/a/", 2, replay_from(history), lambda after: None)
    hub.publish([put("/a/x", 6), put("/b/x", 7), put("/a/y", 8)])
    assert await asyncio.wait_for(collect(watch, 5), 5) == [3, 4, 5, 6, 8]
    await watch.close()
    assert hub.watcher_count == 0


async def test_live_events_at_or_below_a_future_start_are_skipped() -> None:
    hub = hub_with([])
    watch = hub.subscribe("/a/", 3, replay_from([]), lambda after: None)
    hub.publish([put("/a/x", 1), put("/a/x", 2), put("/a/x", 3), put("/a/x", 4)])
    assert await asyncio.wait_for(collect(watch, 1), 5) == [4]
    await watch.close()


async def test_overflow_ends_the_watch_and_unsubscribes_it() -> None:
    hub = hub_with([], buffer=2)
    watch = hub.subscribe("/", 0, replay_from([]), lambda after: None)
    hub.publish([put("/x", 1), put("/x", 2)])
    hub.publish([put("/x", 3)])
    assert hub.watcher_count == 0
    with pytest.raises(CompactedError):
        await collect(watch, 1)


async def test_replay_check_failure_surfaces_from_iteration() -> None:
    hub = hub_with([put("/a", 5)])

    def check(after: int) -> None:
        raise CompactedError(after, 4)

    watch = hub.subscribe("/", 1, replay_from([]), check)
    with pytest.raises(CompactedError) as info:
        await collect(watch, 1)
    assert info.value.requested == 1 and info.value.oldest == 4


async def test_one_write_reaches_a_thousand_watchers_quickly(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "s.db"))
    await store.start()
    try:
        rev = await store.current_revision()
        watches = [store.watch("/p/", rev) for _ in range(1000)]
        got = asyncio.Event()
        left = [len(watches)]

        async def consume(watch) -> None:
            async for _ in watch:
                left[0] -= 1
                if left[0] == 0:
                    got.set()
                return

        tasks = [asyncio.create_task(consume(w)) for w in watches]
        await asyncio.sleep(0)  # every consumer parks on its first wait
        started = time.perf_counter()
        await store.create("/p/a", b"1")
        await asyncio.wait_for(got.wait(), 5)
        elapsed = time.perf_counter() - started
        await asyncio.gather(*tasks)
        for watch in watches:
            await watch.close()
        # The target is well under 100 ms; the bound leaves room for a busy CI box.
        assert elapsed < 0.25, f"fan-out to 1000 watchers took {elapsed * 1000:.0f} ms"
    finally:
        await store.close()
