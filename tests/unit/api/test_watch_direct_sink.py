"""The watch's direct writer: events of one loop turn leave in one write,
in order, and anything written by another path goes after them."""

from __future__ import annotations

import asyncio

from corral.api import watchstream
from corral.api.listwatch import ApiEvent
from corral.api.watchstream import _DirectSink, _Progress


class _Transport:
    def __init__(self, buffered: int = 0) -> None:
        self.writes: list[bytes] = []
        self.buffered = buffered
        self.closing = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return self.buffered


class _Writer:
    def chunk(self, event: ApiEvent) -> bytes:
        return f"{event.type}:{event.revision};".encode()


def _event(revision: int) -> ApiEvent:
    return ApiEvent("MODIFIED", {"metadata": {"name": "p"}}, revision)


def _sink(transport: _Transport) -> tuple[_DirectSink, _Progress]:
    progress = _Progress(0)
    return _DirectSink(transport, _Writer(), progress), progress  # type: ignore[arg-type]


async def test_events_of_one_turn_leave_in_one_write_in_order() -> None:
    transport = _Transport()
    sink, progress = _sink(transport)
    assert all(sink(_event(rev)) for rev in (5, 6, 7))
    assert transport.writes == []  # nothing until the turn ends
    assert progress.revision == 7
    await asyncio.sleep(0)
    assert transport.writes == [b"MODIFIED:5;MODIFIED:6;MODIFIED:7;"]
    assert sink(_event(8))
    await asyncio.sleep(0)
    assert transport.writes[1:] == [b"MODIFIED:8;"]


async def test_flush_puts_pending_events_before_a_write_by_another_path() -> None:
    transport = _Transport()
    sink, _ = _sink(transport)
    sink(_event(1))
    sink.flush()
    transport.write(b"bookmark;")
    await asyncio.sleep(0)  # the flush scheduled for the turn finds nothing left
    assert transport.writes == [b"MODIFIED:1;", b"bookmark;"]


async def test_pending_bytes_count_against_the_high_water_mark(monkeypatch) -> None:
    monkeypatch.setattr(watchstream, "_HIGH_WATER", 25)
    transport = _Transport(buffered=10)
    sink, progress = _sink(transport)
    assert sink(_event(1))   # 10 buffered + 0 pending
    assert sink(_event(2))   # 10 + 11
    assert not sink(_event(3))  # 10 + 22 > 25: the watch's task takes over
    assert progress.revision == 2
    await asyncio.sleep(0)
    assert transport.writes == [b"MODIFIED:1;MODIFIED:2;"]


async def test_a_closing_connection_gets_nothing() -> None:
    transport = _Transport()
    sink, _ = _sink(transport)
    sink(_event(1))
    transport.closing = True
    assert not sink(_event(2))
    await asyncio.sleep(0)
    assert transport.writes == []
