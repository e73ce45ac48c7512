"""The frames a store owner and its remote clients exchange over a Unix socket.

A frame is a 4-byte big-endian length and a ``marshal``-encoded tuple.
``marshal`` is used rather than JSON or pickle because both ends are the
same interpreter (the owner spawns its workers with ``sys.executable``),
values are raw bytes, and encoding a tuple of str/bytes/int is a single C
call: the frame codec must cost far less than the store call it carries,
or splitting the server across processes gains nothing. The socket is
0600 in a 0700 directory, like the API's own local socket, and marshal
cannot build anything but plain values, so a frame is data, never code.

Client to owner: ``(call_id, op, args)``; ``op`` is a Store method name,
``"unwatch"`` or ``"credit"`` (more events a watch's consumer can take);
for ``"watch"`` the call id also names the watch.
Owner to client: ``(call_id, kind, payload)`` with kind ``OK`` (payload is
the result), ``ERROR`` (an encoded StoreError), ``EVENTS`` (a list of
encoded watch events) or ``END`` (the owner ended the watch).
"""

from __future__ import annotations

import asyncio
import marshal
import struct
from typing import Any

from corral.store.protocol import (
    CompactedError,
    ConflictError,
    EventType,
    FutureRevisionError,
    KeyExistsError,
    KeyNotFoundError,
    KeyValue,
    ListResult,
    StoreError,
    StoreUnavailableError,
    WatchEvent,
)

OK, ERROR, EVENTS, END = 0, 1, 2, 3
HEADER = struct.Struct(">I")
MAX_FRAME = 256 * 1024 * 1024  # a list of a whole large resource fits; a corrupt length does not

CALLS = frozenset({"current_revision", "get", "create", "update", "delete", "list", "count", "compact",
                   "watch", "unwatch", "credit"})

KvTuple = tuple[str, bytes, int, int]


def frame(message: tuple[Any, ...]) -> bytes:
    body = marshal.dumps(message)
    return HEADER.pack(len(body)) + body


class FrameReader:
    """Cuts a byte stream into decoded messages; ``feed`` returns the
    complete ones and keeps the rest for the next chunk."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Any]:
        buffer = self._buffer
        buffer += data
        messages = []
        start, end = 0, len(buffer)
        while end - start >= 4:
            (size,) = HEADER.unpack_from(buffer, start)
            if size > MAX_FRAME:
                raise StoreUnavailableError(f"store connection: frame of {size} bytes exceeds {MAX_FRAME}")
            if end - start - 4 < size:
                break
            messages.append(marshal.loads(memoryview(buffer)[start + 4:start + 4 + size]))
            start += 4 + size
        if start:
            del buffer[:start]
        return messages


class Outbox:
    """Frames queued in one loop iteration leave in one write (one syscall)
    at its end; ``transport`` None drops them (the connection is gone)."""

    def __init__(self) -> None:
        self.transport: Any = None
        self._frames: list[bytes] = []

    def send(self, message: tuple[Any, ...]) -> None:
        if not self._frames:
            asyncio.get_running_loop().call_soon(self.flush)
        self._frames.append(frame(message))

    def flush(self) -> None:
        frames, self._frames = self._frames, []
        if self.transport is not None and frames:
            self.transport.write(b"".join(frames))


def kv_out(kv: KeyValue | None) -> KvTuple | None:
    return None if kv is None else (kv.key, kv.value, kv.create_revision, kv.mod_revision)


def kv_in(data: KvTuple | None) -> KeyValue | None:
    return None if data is None else KeyValue(*data)


def result_out(op: str, result: Any) -> Any:
    if isinstance(result, KeyValue):
        return kv_out(result)
    if isinstance(result, ListResult):
        return ([kv_out(kv) for kv in result.items], result.revision, result.more)
    return result


def result_in(op: str, data: Any) -> Any:
    if op in ("get", "create", "update", "delete"):
        return kv_in(data)
    if op == "list":
        items, revision, more = data
        return ListResult([KeyValue(*kv) for kv in items], revision, more)
    return data


def events_out(events: list[WatchEvent]) -> list[tuple[bool, KvTuple, KvTuple | None]]:
    return [(event.type is EventType.PUT, (event.kv.key, event.kv.value, event.kv.create_revision,
                                           event.kv.mod_revision), kv_out(event.prev)) for event in events]


def events_in(data: list[tuple[bool, KvTuple, KvTuple | None]]) -> list[WatchEvent]:
    put, delete = EventType.PUT, EventType.DELETE
    return [WatchEvent(put if is_put else delete, KeyValue(*kv), None if prev is None else KeyValue(*prev))
            for is_put, kv, prev in data]


def error_out(exc: BaseException) -> tuple[Any, ...]:
    """A StoreError as plain values; anything else becomes 'unavailable' with
    its message, since the client cannot do better than report it."""
    if isinstance(exc, KeyExistsError):
        return ("exists", exc.key)
    if isinstance(exc, KeyNotFoundError):
        return ("missing", exc.key)
    if isinstance(exc, ConflictError):
        return ("conflict", exc.key, exc.expected, kv_out(exc.current))
    if isinstance(exc, CompactedError):
        return ("compacted", exc.requested, exc.oldest)
    if isinstance(exc, FutureRevisionError):
        return ("future", exc.requested, exc.current)
    if isinstance(exc, ValueError):
        return ("value", str(exc))
    return ("unavailable", f"{type(exc).__name__}: {exc}")


def error_in(data: tuple[Any, ...]) -> Exception:
    kind, *args = data
    if kind == "exists":
        return KeyExistsError(args[0])
    if kind == "missing":
        return KeyNotFoundError(args[0])
    if kind == "conflict":
        return ConflictError(args[0], args[1], kv_in(args[2]))
    if kind == "compacted":
        return CompactedError(args[0], args[1])
    if kind == "future":
        return FutureRevisionError(args[0], args[1])
    if kind == "value":  # the owner's argument checks, e.g. a bad prefix
        return ValueError(args[0])
    return StoreUnavailableError(f"store owner: {args[0] if args else kind}")


__all__ = ["CALLS", "END", "ERROR", "EVENTS", "OK", "FrameReader", "Outbox", "StoreError", "error_in", "error_out",
           "events_in", "events_out", "frame", "kv_in", "kv_out", "result_in", "result_out"]
