"""Watches on etcd: one etcd watch stream per store watch.

etcd replays history from ``start_revision`` and then streams live events
in revision order, which is exactly the protocol's promise, so the work
here is at the edges: a reader task moves events into a bounded buffer (a
consumer that falls ``buffer`` events behind is ended with
CompactedError, as with SQLite, instead of holding etcd's memory); when the
member it reads from dies, the stream is re-created on the channel's next
member from the revision after the last event received, so the consumer
sees no gap and no duplicate; a ``compact_revision`` from etcd, or a
deletion whose previous value was compacted away, becomes CompactedError
so the client re-lists.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from typing import TYPE_CHECKING, Any

import grpc
from aetcd import rpc

from corral.store.etcd_conn import is_unavailable, prefix_end
from corral.store.protocol import (
    CompactedError,
    EventType,
    KeyValue,
    StoreError,
    StoreUnavailableError,
    WatchEvent,
)

if TYPE_CHECKING:
    from corral.store.etcd import EtcdStore

log = logging.getLogger(__name__)

_RETRY_FIRST = 0.05
_RETRY_MAX = 1.0
_PUT = 0
_DELETE = 1


class _Restart(Exception):
    """The stream ended without an error worth reporting; open a new one."""


class EtcdWatch:
    def __init__(self, store: EtcdStore, key: bytes, after: int, buffer: int) -> None:
        self._store = store
        self._key = key or b"\0"
        self._end = prefix_end(key)
        self._root_len = len(store._root)
        self._after = after
        # after == 0: "all history still kept", which etcd expresses as the
        # compacted revision (found on the first attempt).
        self._next = after + 1
        self._from_oldest = after == 0
        self._buffer = buffer
        self._events: collections.deque[WatchEvent] = collections.deque()
        self._last_delivered = after
        self._error: StoreError | None = None
        self._ended = False
        self._waiter: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._call: Any = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())
        self._task.set_name(f"etcd-watch {self._key!r}")

    # -- reader ---------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        pause = _RETRY_FIRST
        failing_since: float | None = None
        patience = 3 * self._store.options.timeout
        while not self._ended and self._error is None:
            try:
                await self._stream()
                return
            except asyncio.CancelledError:
                return
            except StoreError as exc:
                self._fail(exc)
                return
            except (_Restart, rpc.AioRpcError) as exc:
                if isinstance(exc, rpc.AioRpcError) and not is_unavailable(exc):
                    self._fail(StoreError(f"etcd watch: {exc.code().name}: {exc.details()}"))
                    return
                if self._store.closed:
                    self.end()
                    return
                now = loop.time()
                failing_since = failing_since if failing_since is not None else now
                if now - failing_since > patience:
                    self._fail(StoreUnavailableError(f"etcd watch: no member answered for {patience:.0f}s: {exc}"))
                    return
                log.debug("etcd watch %r restarting from %d: %s", self._key, self._next, exc)
                await asyncio.sleep(pause)
                pause = min(_RETRY_MAX, pause * 2)
            finally:
                self._hang_up()

    async def _stream(self) -> None:
        self._call = call = self._store._watch_call()
        await call.write(self._create_request())
        while True:
            resp = await call.read()
            if resp is grpc.aio.EOF:
                raise _Restart("stream closed by the server")
            if resp.compact_revision:
                if self._from_oldest and self._next <= resp.compact_revision:
                    self._next = resp.compact_revision
                    self._from_oldest = False
                    raise _Restart("starting from the oldest kept revision")
                raise CompactedError(self._next - 1, resp.compact_revision)
            if resp.canceled:
                raise _Restart(f"cancelled by etcd: {resp.cancel_reason}")
            if resp.events:
                self._from_oldest = False
                self._push([self._convert(ev) for ev in resp.events])

    def _create_request(self) -> Any:
        create = rpc.WatchCreateRequest(key=self._key, range_end=self._end,
                                        start_revision=self._next, prev_kv=True)
        return rpc.WatchRequest(create_request=create)

    def _convert(self, ev: Any) -> WatchEvent:
        kv = ev.kv
        key = kv.key[self._root_len:].decode()
        has_prev = ev.HasField("prev_kv") and ev.prev_kv.mod_revision > 0
        prev = (KeyValue(key, ev.prev_kv.value, ev.prev_kv.create_revision, ev.prev_kv.mod_revision)
                if has_prev else None)
        self._next = kv.mod_revision + 1
        if ev.type == _DELETE:
            if prev is None:
                # The deleted value is needed to tell watchers what went away.
                raise CompactedError(kv.mod_revision - 1, kv.mod_revision)
            return WatchEvent(EventType.DELETE,
                              KeyValue(key, prev.value, prev.create_revision, kv.mod_revision), prev)
        return WatchEvent(EventType.PUT, KeyValue(key, kv.value, kv.create_revision, kv.mod_revision),
                          prev)

    def _push(self, events: list[WatchEvent]) -> None:
        if self._ended or self._error is not None:
            return
        # etcd sends replayed history in large responses; only a backlog left
        # over from earlier responses means the consumer is falling behind.
        behind = len(self._events)
        self._events.extend(events)
        if behind > self._buffer:
            self._fail(CompactedError(self._last_delivered, self._events[0].kv.mod_revision))
            return
        self._wake()

    def _hang_up(self) -> None:
        call, self._call = self._call, None
        if call is not None:
            call.cancel()

    def _fail(self, error: StoreError) -> None:
        if self._error is None and not self._ended:
            self._error = error
        self._events.clear()
        self._wake()

    def end(self) -> None:
        """Stop at once (store closing); iteration ends without an error."""
        self._ended = True
        self._events.clear()
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- consumer -------------------------------------------------------------

    def __aiter__(self) -> EtcdWatch:
        return self

    async def __anext__(self) -> WatchEvent:
        while True:
            if self._ended:
                raise StopAsyncIteration
            if self._error is not None:
                raise self._error
            if self._events:
                event = self._events.popleft()
                self._last_delivered = event.kv.mod_revision
                return event
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    async def close(self) -> None:
        """End iteration and the etcd stream; idempotent."""
        self.end()
        task, self._task = self._task, None
        if task is not None and task is not asyncio.current_task():
            with contextlib.suppress(BaseException):
                await task
        self._store._forget(self)
