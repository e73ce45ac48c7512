"""The store owner's side of a remote store: serves one started Store to the
API worker processes over a Unix socket (frames in :mod:`remote_wire`).

Only one process may own an embedded (SQLite) store: its revision counter,
write batching and watch hub live in that process. Workers that serve HTTP
in other processes send every store call here, and hold their watches here,
so all of them see one sequence of revisions and the same durability: a
write is answered only once the owner's store has acknowledged it.

Watch events flow on credit: a watch starts with as many events as the
client's buffer holds, and the client grants more as its consumer takes
them. A consumer that falls behind therefore stops the owner's iteration
of the store watch, whose own bounded buffer then overflows and ends it
with CompactedError, exactly as for a local watch; a replay of old history
is pulled page by page as the consumer reads, never pushed all at once.
The same holds when a worker's socket backs up (high-water mark). The
owner never holds an unbounded backlog for a worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path
from typing import Any

from corral.store import remote_wire as wire
from corral.store.protocol import Store, Watch

log = logging.getLogger(__name__)

HIGH_WATER = 8 * 1024 * 1024


class StoreService:
    """``await start()`` listens on ``path``; ``await close()`` stops
    listening and drops every connection (the store itself stays open: its
    owner closes it)."""

    def __init__(self, store: Store, path: Path) -> None:
        self.store = store
        self.path = path
        self._server: asyncio.AbstractServer | None = None
        self._connections: set[_Connection] = set()

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # left by a killed owner
        loop = asyncio.get_running_loop()
        old_umask = os.umask(0o177)  # no window in which the socket is reachable by others
        try:
            self._server = await loop.create_unix_server(lambda: _Connection(self), str(self.path))
        finally:
            os.umask(old_umask)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for connection in list(self._connections):
            connection.abort()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class _Connection(asyncio.Protocol):
    def __init__(self, service: StoreService) -> None:
        self.service = service
        self.store = service.store
        self.transport: asyncio.Transport | None = None
        self.reader = wire.FrameReader()
        self.watches: dict[int, _Forwarding] = {}
        self.outbox = wire.Outbox()
        self.writable = asyncio.Event()
        self.writable.set()
        self.calls: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = self.outbox.transport = transport  # type: ignore[assignment]  # uvloop's are not asyncio.Transport subclasses
        transport.set_write_buffer_limits(high=HIGH_WATER)
        self.service._connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.service._connections.discard(self)
        self.transport = self.outbox.transport = None
        self.writable.set()  # let forwarders see the connection is gone and stop
        for forwarding in self.watches.values():
            forwarding.task.cancel()
        self.watches.clear()
        for task in self.calls:
            task.cancel()

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        try:
            messages = self.reader.feed(data)
        except Exception:  # noqa: BLE001 - a garbled stream cannot be resynchronised
            log.exception("store service: dropping a connection that sent a bad frame")
            self.abort()
            return
        for message in messages:
            self._dispatch(message)

    def _dispatch(self, message: Any) -> None:
        try:
            call_id, op, args = message
        except (TypeError, ValueError):
            log.error("store service: dropping a connection that sent %r", type(message).__name__)
            self.abort()
            return
        if op not in wire.CALLS:
            self._send((call_id, wire.ERROR, ("value", f"store service: unknown call {op!r}")))
        elif op == "watch":
            self._open_watch(call_id, *args)
        elif op == "unwatch":
            forwarding = self.watches.pop(call_id, None)
            if forwarding is not None:
                forwarding.task.cancel()
        elif op == "credit":
            forwarding = self.watches.get(call_id)
            if forwarding is not None:
                forwarding.grant(args[0])
        else:
            task = asyncio.get_running_loop().create_task(self._call(call_id, op, args))
            self.calls.add(task)
            task.add_done_callback(self.calls.discard)

    async def _call(self, call_id: int, op: str, args: tuple[Any, ...]) -> None:
        try:
            if op == "list":  # its options are keyword-only
                prefix, revision, start_after, limit = args
                result = await self.store.list(prefix, revision=revision, start_after=start_after, limit=limit)
            else:
                result = await getattr(self.store, op)(*args)
        except Exception as exc:  # noqa: BLE001 - every failure goes back to the caller
            self._send((call_id, wire.ERROR, wire.error_out(exc)))
        else:
            self._send((call_id, wire.OK, wire.result_out(op, result)))

    def _open_watch(self, watch_id: int, prefix: str, after: int, credit: int) -> None:
        try:
            watch = self.store.watch(prefix, after)
        except Exception as exc:  # noqa: BLE001
            self._send((watch_id, wire.ERROR, wire.error_out(exc)))
            return
        forwarding = _Forwarding(credit)
        forwarding.task = asyncio.get_running_loop().create_task(self._forward(watch_id, watch, forwarding))
        self.watches[watch_id] = forwarding

    async def _forward(self, watch_id: int, watch: Watch, forwarding: _Forwarding) -> None:
        """One frame per event; ``_send`` puts every frame made in one loop
        iteration into one write, so a burst of events costs few syscalls."""
        try:
            async for event in watch:
                if self.transport is None:
                    return
                self._send((watch_id, wire.EVENTS, wire.events_out([event])))
                forwarding.credit -= 1
                if forwarding.credit <= 0:
                    forwarding.granted.clear()
                    await forwarding.granted.wait()
                if not self.writable.is_set():
                    await self.writable.wait()
            self._send((watch_id, wire.END, None))
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # noqa: BLE001 - CompactedError and friends end the remote watch
            self._send((watch_id, wire.ERROR, wire.error_out(exc)))
        finally:
            self.watches.pop(watch_id, None)
            with contextlib.suppress(Exception):
                await watch.close()

    def _send(self, message: tuple[Any, ...]) -> None:
        if self.transport is not None:
            self.outbox.send(message)



class _Forwarding:
    """One remote watch: its forwarding task and the events the client can
    still take."""

    __slots__ = ("credit", "granted", "task")

    def __init__(self, credit: int) -> None:
        self.credit = credit
        self.granted = asyncio.Event()
        self.task: asyncio.Task[None] = None  # type: ignore[assignment]  # set right after

    def grant(self, events: int) -> None:
        self.credit += events
        if self.credit > 0:
            self.granted.set()
