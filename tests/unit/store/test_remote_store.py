"""What only a store in another process can do: lose its owner, face a
consumer slower than its socket, receive garbage. (test_conformance.py runs
the whole Store contract against the remote store too.)"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from corral.store import remote_wire as wire
from corral.store.protocol import CompactedError, KeyValue, StoreUnavailableError
from corral.store.remote import RemoteStore
from corral.store.service import StoreService
from corral.store.sqlite import SqliteStore

DEADLINE = 10.0


@pytest.fixture
async def owner(tmp_path: Path):
    store = SqliteStore(str(tmp_path / "s.db"))
    await store.start()
    service = StoreService(store, tmp_path / "s.sock")
    await service.start()
    yield service
    await service.close()
    await store.close()


async def connect(service: StoreService, **options: int) -> RemoteStore:
    remote = RemoteStore(service.path, **options)
    await remote.start()
    return remote


async def test_the_socket_is_only_for_its_user(owner: StoreService) -> None:
    assert owner.path.stat().st_mode & 0o777 == 0o600


async def test_losing_the_owner_fails_calls_and_watches_and_says_so(owner: StoreService) -> None:
    remote = await connect(owner)
    await remote.create("/a", b"1")
    watch = remote.watch("/", 0)
    assert (await asyncio.wait_for(anext(aiter(watch)), DEADLINE)).kv.key == "/a"
    await owner.close()
    await asyncio.wait_for(remote.lost.wait(), DEADLINE)
    with pytest.raises(StoreUnavailableError, match="lost"):
        await remote.get("/a")
    with pytest.raises(StoreUnavailableError):
        await asyncio.wait_for(anext(aiter(watch)), DEADLINE)
    await remote.close()


async def test_no_owner_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailableError, match="s.sock"):
        await RemoteStore(tmp_path / "s.sock").start()


async def test_a_consumer_that_falls_behind_is_compacted_and_a_replay_is_pulled(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "s.db"), watch_buffer=20)
    await store.start()
    service = StoreService(store, tmp_path / "s.sock")
    await service.start()
    remote = await connect(service, watch_buffer=10)
    try:
        watch = remote.watch("/k/", 0)
        for i in range(60):  # nobody reads: 10 in flight on credit, the owner's buffer of 20 overflows
            await remote.create(f"/k/{i:02d}", b"x")
        got = []
        with pytest.raises(CompactedError):
            async for event in watch:
                got.append(event.kv.key)
        assert len(got) < 60
        # Old history is pulled as the consumer reads, so a replay of all 60
        # through a 10-event window is not "falling behind".
        fresh = remote.watch("/k/", 0)
        keys = [(await asyncio.wait_for(anext(aiter(fresh)), DEADLINE)).kv.key for _ in range(60)]
        assert keys == [f"/k/{i:02d}" for i in range(60)]
        await fresh.close()
    finally:
        await remote.close()
        await service.close()
        await store.close()


async def test_garbage_on_one_connection_drops_only_that_connection(owner: StoreService) -> None:
    good = await connect(owner)
    reader, writer = await asyncio.open_unix_connection(str(owner.path))
    writer.write(wire.HEADER.pack(5) + b"hello")  # not marshal data
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), DEADLINE) == b""  # the owner hung up
    writer.close()
    assert (await good.create("/still", b"ok")).key == "/still"
    await good.close()


async def test_an_unknown_call_is_an_error_not_a_crash(owner: StoreService) -> None:
    remote = await connect(owner)
    with pytest.raises(ValueError, match="unknown call 'drop_everything'"):
        await remote._call("drop_everything", ())
    assert await remote.current_revision() >= 0
    await remote.close()


def test_a_corrupt_length_is_refused_before_buffering_it() -> None:
    reader = wire.FrameReader()
    with pytest.raises(StoreUnavailableError, match="exceeds"):
        reader.feed(wire.HEADER.pack(wire.MAX_FRAME + 1) + b"x")


def test_frames_split_anywhere_decode_the_same() -> None:
    messages = [(1, wire.OK, wire.kv_out(KeyValue("/a", b"\x00\xff", 3, 4))), (2, wire.EVENTS, []),
                (3, "list", ("/", 0, "", 0))]
    stream = b"".join(wire.frame(m) for m in messages)
    for cut in range(len(stream) + 1):
        reader = wire.FrameReader()
        assert reader.feed(stream[:cut]) + reader.feed(stream[cut:]) == messages
