"""A Store whose owner is another process: every call and watch goes over
one Unix socket to a :class:`~corral.store.service.StoreService`.

API worker processes use it (``corral server --api-workers N``): they parse,
authenticate, validate and encode requests on their own cores, and the one
owner process keeps the store's single revision sequence. Calls are
pipelined on the connection (many in flight, answered in any order); the
frames made in one loop iteration go out in one write.

The connection is not re-established: a call in flight when the owner goes
may or may not have been applied, so every pending call and watch fails
with StoreUnavailableError (as a store that lost its disk would) and
``lost`` is set; the worker process exits on it, and the owner's next start
brings fresh workers.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
from pathlib import Path
from typing import Any

from corral.store import remote_wire as wire
from corral.store.protocol import (
    KeyValue,
    ListResult,
    StoreError,
    StoreUnavailableError,
    WatchEvent,
)

CLOSE_GRACE = 10.0  # seconds close() waits for calls already sent


class RemoteStore:
    def __init__(self, path: str | Path, *, watch_buffer: int = 4096) -> None:
        self.path = str(path)
        self.watch_buffer = watch_buffer
        self.lost = asyncio.Event()
        self._transport: asyncio.Transport | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[asyncio.Future[Any], str]] = {}
        self._watches: dict[int, RemoteWatch] = {}
        self._outbox = wire.Outbox()
        self._closed = False

    # -- lifecycle ------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.lost = asyncio.Event()
        try:
            transport, _ = await loop.create_unix_connection(lambda: _Client(self), self.path)
        except OSError as exc:
            raise StoreUnavailableError(f"store owner at {self.path}: {exc.strerror or exc}") from exc
        self._transport = self._outbox.transport = transport

    async def close(self) -> None:
        """Ends every watch, lets calls already made finish (a write sent
        before close is committed, not dropped), then hangs up."""
        if self._closed:
            return
        self._closed = True
        for watch in list(self._watches.values()):
            await watch.close()
        pending = [future for future, _ in self._pending.values()]
        if pending and self._transport is not None:
            await asyncio.wait(pending, timeout=CLOSE_GRACE)
        if self._transport is not None:
            self._outbox.flush()
            self._transport.close()
        self._connection_lost(None)

    # -- the Store protocol ---------------------------------------------------

    async def current_revision(self) -> int:
        return await self._call("current_revision", ())

    async def get(self, key: str) -> KeyValue | None:
        return await self._call("get", (key,))

    async def create(self, key: str, value: bytes) -> KeyValue:
        return await self._call("create", (key, value))

    async def update(self, key: str, value: bytes, expected_revision: int) -> KeyValue:
        return await self._call("update", (key, value, expected_revision))

    async def delete(self, key: str, expected_revision: int = 0) -> KeyValue:
        return await self._call("delete", (key, expected_revision))

    async def list(self, prefix: str, *, revision: int = 0, start_after: str = "", limit: int = 0) -> ListResult:
        return await self._call("list", (prefix, revision, start_after, limit))

    async def count(self, prefix: str) -> int:
        return await self._call("count", (prefix,))

    async def compact(self, revision: int) -> None:
        await self._call("compact", (revision,))

    def watch(self, prefix: str, after_revision: int) -> RemoteWatch:
        if not isinstance(prefix, str):
            raise ValueError(f"prefix: must be a string, got {type(prefix).__name__}")
        if not isinstance(after_revision, int) or isinstance(after_revision, bool) or after_revision < 0:
            raise ValueError(f"after_revision: must be a non-negative integer, got {after_revision!r}")
        watch_id = next(self._ids)
        watch = RemoteWatch(self, watch_id, after_revision, self.watch_buffer)
        if self._transport is None or self._closed:
            watch._fail(self._unavailable())
            return watch
        self._watches[watch_id] = watch
        self._send((watch_id, "watch", (prefix, after_revision, self.watch_buffer)))
        return watch

    # -- plumbing -------------------------------------------------------------

    async def _call(self, op: str, args: tuple[Any, ...]) -> Any:
        if self._transport is None or self._closed:
            raise self._unavailable()
        call_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[call_id] = (future, op)
        self._send((call_id, op, args))
        return await future

    def _unavailable(self) -> StoreUnavailableError:
        state = "closed" if self._closed else "lost"
        return StoreUnavailableError(f"store owner at {self.path}: connection {state}")

    def _send(self, message: tuple[Any, ...]) -> None:
        self._outbox.send(message)

    def _received(self, message: Any) -> None:
        call_id, kind, payload = message
        if kind == wire.EVENTS:
            watch = self._watches.get(call_id)
            if watch is not None:
                watch._push(wire.events_in(payload))
            return
        entry = self._pending.pop(call_id, None)
        if entry is None:  # a watch's END or ERROR
            watch = self._watches.pop(call_id, None)
            if watch is not None and kind == wire.ERROR:
                watch._fail(wire.error_in(payload))
            elif watch is not None:
                watch._end()
            return
        future, op = entry
        if future.done():
            return
        if kind == wire.OK:
            future.set_result(wire.result_in(op, payload))
        else:
            future.set_exception(wire.error_in(payload))

    def _grant(self, watch_id: int, events: int) -> None:
        if watch_id in self._watches and self._transport is not None:
            self._send((watch_id, "credit", (events,)))

    def _unwatch(self, watch_id: int) -> None:
        if self._watches.pop(watch_id, None) is not None and self._transport is not None:
            self._send((watch_id, "unwatch", ()))

    def _connection_lost(self, exc: Exception | None) -> None:
        if self._transport is None and not self._pending and not self._watches:
            self.lost.set()
            return
        self._transport = self._outbox.transport = None
        error = self._unavailable()
        pending, self._pending = self._pending, {}
        for future, _ in pending.values():
            if not future.done():
                future.set_exception(error)
        watches, self._watches = self._watches, {}
        for watch in watches.values():
            watch._fail(error)
        self.lost.set()


class RemoteWatch:
    """Events the owner forwards, at most ``buffer`` ahead of the consumer:
    the owner sends only what it was granted, and the consumer grants more
    as it takes events (see store/service.py). A consumer that falls behind
    holds up the owner's store watch, which ends with CompactedError, as a
    local one would."""

    def __init__(self, store: RemoteStore, watch_id: int, after: int, buffer: int) -> None:
        self._store = store
        self._id = watch_id
        self._buffer = buffer
        self._events: collections.deque[WatchEvent] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self._error: BaseException | None = None
        self._ended = False
        self._taken = 0  # events taken since the last grant

    def _push(self, events: list[WatchEvent]) -> None:
        if self._error is not None or self._ended:
            return
        self._events.extend(events)
        if len(self._events) > self._buffer:  # the owner broke the credit rule
            self._store._unwatch(self._id)
            self._fail(StoreUnavailableError(f"store owner sent more than the {self._buffer} events granted"))
            return
        self._wake()

    def _fail(self, error: BaseException) -> None:
        if self._error is None and not self._ended:
            self._error = error
            self._events.clear()
            self._wake()

    def _end(self) -> None:
        self._ended = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def __aiter__(self) -> RemoteWatch:
        return self

    async def __anext__(self) -> WatchEvent:
        while True:
            if self._events:
                self._taken += 1
                if self._taken * 2 >= self._buffer:
                    self._store._grant(self._id, self._taken)
                    self._taken = 0
                return self._events.popleft()
            if self._error is not None:
                raise self._error
            if self._ended:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    async def close(self) -> None:
        if not self._ended:
            self._store._unwatch(self._id)
            self._end()
            self._events.clear()


class _Client(asyncio.Protocol):
    def __init__(self, store: RemoteStore) -> None:
        self.store = store
        self.reader = wire.FrameReader()

    def data_received(self, data: bytes) -> None:
        try:
            messages = self.reader.feed(data)
        except StoreError as exc:
            if self.store._transport is not None:
                self.store._transport.abort()
            self.store._connection_lost(exc)
            return
        for message in messages:
            self.store._received(message)

    def connection_lost(self, exc: Exception | None) -> None:
        self.store._connection_lost(exc)
