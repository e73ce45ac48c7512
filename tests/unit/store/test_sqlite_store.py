"""What is specific to the SQLite backend: the log on disk, restarts, the
in-memory ring's fallback to the log, compaction's bookkeeping, errors."""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from corral.store import open_store
from corral.store.protocol import (
    CompactedError,
    EventType,
    KeyValue,
    StoreUnavailableError,
    WatchEvent,
)
from corral.store.sqlite import SqliteStore


async def drain(watch, upto: int) -> list[WatchEvent]:
    events: list[WatchEvent] = []

    async def pull() -> None:
        async for event in watch:
            events.append(event)
            if event.kv.mod_revision >= upto:
                return

    await asyncio.wait_for(pull(), 10)
    await watch.close()
    return events


async def random_history(
    store: SqliteStore, seed: int, steps: int
) -> tuple[dict[int, dict[str, KeyValue]], list[WatchEvent]]:
    """Random creates/updates/deletes over a few keys; returns the state after
    every revision (the model) and the events that made it."""
    rng = random.Random(seed)
    state: dict[str, KeyValue] = {}
    states: dict[int, dict[str, KeyValue]] = {0: {}}
    events: list[WatchEvent] = []
    for n in range(steps):
        key = f"/k/{rng.randrange(6)}"
        cur = state.get(key)
        if cur is None:
            kv = await store.create(key, f"c{n}".encode())
            events.append(WatchEvent(EventType.PUT, kv))
            state[key] = kv
        elif rng.random() < 0.3:
            kv = await store.delete(key, cur.mod_revision)
            events.append(WatchEvent(EventType.DELETE, kv, cur))
            del state[key]
        else:
            kv = await store.update(key, f"u{n}".encode(), cur.mod_revision)
            events.append(WatchEvent(EventType.PUT, kv, cur))
            state[key] = kv
        states[kv.mod_revision] = dict(state)
    return states, events


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_compaction_in_steps_keeps_every_later_revision_exact(
    tmp_path: Path, seed: int
) -> None:
    store = SqliteStore(str(tmp_path / "s.db"), ring_size=4)
    await store.start()
    try:
        states, events = await random_history(store, seed, 160)
        last = max(states)
        rng = random.Random(seed)
        floor = 0
        for target in sorted(rng.sample(range(2, last), 4)):
            await store.compact(target)
            floor = target
            for rev in range(floor, last + 1):
                listed = await store.list("/k/", revision=rev)
                assert listed.items == sorted(states[rev].values(), key=lambda kv: kv.key), rev
            with pytest.raises(CompactedError):
                await store.list("/k/", revision=floor - 1)
            # The ring holds 4 events, so this replays from the log table.
            replayed = await drain(store.watch("/k/", floor), last)
            assert [(e.type, e.kv) for e in replayed] == [
                (e.type, e.kv) for e in events if e.kv.mod_revision > floor
            ]
        # At or below the floor only the row holding each live key's value is left.
        with sqlite3.connect(tmp_path / "s.db") as conn:
            old = conn.execute("SELECT key, id FROM log WHERE id <= ?", (floor,)).fetchall()
        assert sorted(old) == sorted((k, kv.mod_revision) for k, kv in states[floor].items())
    finally:
        await store.close()


async def test_restart_keeps_data_revision_and_compaction(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    store = SqliteStore(path)
    await store.start()
    a = await store.create("/p/a", b"1")
    b = await store.update("/p/a", b"2", a.mod_revision)
    c = await store.create("/p/c", b"1")
    gone = await store.delete("/p/c")
    await store.compact(b.mod_revision)
    await store.close()

    again = SqliteStore(path)
    await again.start()
    try:
        assert await again.current_revision() == gone.mod_revision
        assert await again.get("/p/a") == b
        with pytest.raises(CompactedError):
            await again.list("/p/", revision=a.mod_revision)
        # History from before the restart comes back from the log table.
        replayed = await drain(again.watch("/p/", b.mod_revision), gone.mod_revision)
        assert [e.kv for e in replayed] == [c, gone]
        nxt = await again.create("/p/d", b"1")
        assert nxt.mod_revision == gone.mod_revision + 1
    finally:
        await again.close()


async def test_revisions_are_never_reused_after_the_newest_row_is_compacted(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "s.db")
    store = SqliteStore(path)
    await store.start()
    await store.create("/a", b"1")
    gone = await store.delete("/a")
    await store.compact(gone.mod_revision)  # the tombstone, the newest row, is removed
    await store.close()
    again = SqliteStore(path)
    await again.start()
    try:
        assert (await again.create("/b", b"1")).mod_revision == gone.mod_revision + 1
    finally:
        await again.close()


async def test_a_second_store_on_the_same_file_is_refused(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    first = SqliteStore(path)
    await first.start()
    try:
        with pytest.raises(StoreUnavailableError, match="already open"):
            await SqliteStore(path).start()
    finally:
        await first.close()
    second = SqliteStore(path)
    await second.start()
    await second.close()


async def test_a_file_that_is_not_a_database_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    path.write_bytes(b"this is not a sqlite database, just some bytes" * 200)
    store = SqliteStore(str(path))
    with pytest.raises(StoreUnavailableError) as info:
        await store.start()
    assert isinstance(info.value.__cause__, sqlite3.DatabaseError)


def test_disk_full_fails_the_batch_cleanly(tmp_path: Path) -> None:
    """A file-size limit makes SQLite's writes fail as on a full disk: the
    writes in flight get StoreUnavailableError, nothing half-written is
    acknowledged, and the store keeps serving reads."""
    script = textwrap.dedent(
        """
        import asyncio, resource, signal, sys
        from corral.store.sqlite import SqliteStore
        from corral.store.protocol import StoreUnavailableError

        async def main(path):
            store = SqliteStore(path)
            await store.start()
            await store.create("/small", b"ok")
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
            failed = 0
            for i in range(40):
                try:
                    await store.create(f"/big/{i}", b"x" * 50_000)
                except StoreUnavailableError as exc:
                    assert exc.__cause__ is not None
                    failed += 1
            assert failed > 0, "the size limit never bit"
            assert (await store.get("/small")).value == b"ok"
            count = await store.count("/big/")
            await store.close()
            print(failed, count)

        asyncio.run(main(sys.argv[1]))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "s.db")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    failed, count = map(int, result.stdout.split())
    assert failed + count == 40


async def test_a_burst_commits_in_submission_order(tmp_path: Path) -> None:
    """One writer, one queue: concurrent calls take revisions in the order
    they were made (moved here from the conformance suite; etcd orders
    concurrent requests as they arrive, which need not be the call order)."""
    store = SqliteStore(str(tmp_path / "b.db"))
    await store.start()
    try:
        await store.create("/dup", b"x")
        results = await asyncio.gather(
            store.create("/k1", b"1"),
            store.create("/dup", b"y"),
            store.update("/missing", b"1", 0),
            store.create("/k2", b"2"),
            return_exceptions=True,
        )
        assert isinstance(results[0], KeyValue) and isinstance(results[3], KeyValue)
        assert results[3].mod_revision == results[0].mod_revision + 1
    finally:
        await store.close()


async def test_open_store_urls(tmp_path: Path) -> None:
    path = tmp_path / "u.db"
    store = open_store(f"sqlite://{path}?history_limit=10")
    assert isinstance(store, SqliteStore) and store.path == str(path)
    await store.start()
    await store.create("/a", b"1")
    await store.close()
    plain = open_store(str(path))
    assert isinstance(plain, SqliteStore)
    await plain.start()
    assert (await plain.get("/a")).value == b"1"
    await plain.close()
    for bad, message in [
        ("etcds://127.0.0.1:2379?certfile=/nonexistent.pem", "cannot read"),
        ("etcd://127.0.0.1:notaport", "bad port"),
        ("mysql://x", "unknown scheme"),
        ("sqlite://", "no database path"),
        (f"sqlite://{path}?colour=red", "unknown option 'colour'"),
        (f"sqlite://{path}?history_limit=lots", "must be an integer"),
        (f"sqlite://{path}?history_limit=0", "history_limit"),
    ]:
        with pytest.raises(ValueError, match=message):
            open_store(bad)


def test_constructor_rejects_bad_settings(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="path"):
        SqliteStore(":memory:")
    with pytest.raises(ValueError, match="watch_buffer"):
        SqliteStore(str(tmp_path / "x.db"), watch_buffer=0)
    assert not os.path.exists(tmp_path / "x.db")


async def test_a_duplicate_create_fails_alone_within_its_batch(tmp_path: Path) -> None:
    """Creates queued together (usually one group commit): the one whose key
    exists fails, its INSERT undone, and the others keep consecutive revisions."""
    from corral.store.protocol import KeyExistsError

    store = SqliteStore(str(tmp_path / "s.db"))
    await store.start()
    try:
        first = await store.create("/k/a", b"1")
        results = await asyncio.gather(store.create("/k/b", b"2"), store.create("/k/a", b"again"),
                                        store.create("/k/c", b"3"), return_exceptions=True)
        assert isinstance(results[1], KeyExistsError)
        assert [r.mod_revision for r in (results[0], results[2])] == [first.mod_revision + 1, first.mod_revision + 2]
        assert (await store.get("/k/a")).value == b"1"
        events = await drain(store.watch("/k/", first.mod_revision - 1), first.mod_revision + 2)
        assert [(e.kv.key, e.kv.mod_revision) for e in events] == [
            ("/k/a", first.mod_revision), ("/k/b", first.mod_revision + 1), ("/k/c", first.mod_revision + 2)]
    finally:
        await store.close()
    reopened = SqliteStore(str(tmp_path / "s.db"))
    await reopened.start()
    try:
        assert await reopened.current_revision() == first.mod_revision + 2
        assert [kv.key for kv in (await reopened.list("/k/")).items] == ["/k/a", "/k/b", "/k/c"]
    finally:
        await reopened.close()
