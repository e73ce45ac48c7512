"""Streaming a watch over HTTP: one JSON event per line, flushed per event.

The stream stays open until ``timeoutSeconds`` (bounded by the server's own
maximum) or until the client goes away; bookmarks, when asked for, let an
informer advance its resourceVersion through quiet periods so a reconnect
does not replay or fall off the history window.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from corral.api.errors import ApiError, BadRequest, Gone
from corral.api.fanout import Subscription, frame
from corral.api.listwatch import ApiEvent, Filter, open_watch, parse_resource_version
from corral.api.tables import table, wants_table
from corral.store.protocol import CompactedError

if TYPE_CHECKING:
    from corral.api.context import ServerContext
    from corral.api.paths import Target


def _timeout(request: web.Request, ctx: ServerContext) -> float:
    raw = request.query.get("timeoutSeconds")
    limit = ctx.settings.max_watch_seconds
    try:
        value = int(raw) if raw else limit
    except ValueError:
        raise BadRequest(f'timeoutSeconds: Invalid value: "{raw}": must be a non-negative integer') from None
    if value < 0:
        raise BadRequest(f'timeoutSeconds: Invalid value: "{raw}": must be a non-negative integer')
    return max(1.0, min(float(value), float(limit)))


_HIGH_WATER = 256 * 1024
"""Bytes a connection may have unsent before events for it queue instead of
being written at once (a slow reader then falls behind and gets 410)."""


class _EventWriter:
    def __init__(self, ctx: ServerContext, request: web.Request, target: Target) -> None:
        self.ctx = ctx
        self.target = target
        self.as_table = wants_table(request.headers.get("Accept", ""))
        self.include = request.query.get("includeObject", "Metadata")
        self.first_table = True

    def encode(self, event: ApiEvent) -> bytes:
        obj: Any = event.object
        if not self.as_table and event.type in ("ADDED", "MODIFIED", "DELETED"):
            return self.ctx.watch_fanout.line(event.type, obj, event.revision)
        if self.as_table and event.type in ("ADDED", "MODIFIED", "DELETED"):
            # kubectl prints the headers from the first table it gets.
            obj = table(
                self.target.rt, [obj], self.ctx.clock.now(), include=self.include,
                resource_version=str(event.revision), headers=self.first_table,
            )
            self.first_table = False
        return orjson.dumps({"type": event.type, "object": obj}) + b"\n"

    def chunk(self, event: ApiEvent) -> bytes:
        """The event as one HTTP chunk (shared bytes for plain events)."""
        if not self.as_table and event.type in ("ADDED", "MODIFIED", "DELETED"):
            return self.ctx.watch_fanout.chunk(event.type, event.object, event.revision)
        return frame(self.encode(event))


class _Progress:
    """The newest revision written so far; a bookmark carries that or, once
    the watch is caught up, the newest its resource has seen."""

    __slots__ = ("revision", "sub")

    def __init__(self, revision: int) -> None:
        self.revision = revision
        self.sub: Subscription | None = None

    def bookmark(self) -> int:
        return self.revision if self.sub is None else max(self.revision, self.sub.progress())


class _DirectSink:
    """Writes events to the connection from the dispatcher itself, while the
    connection keeps up: the watch's task is not woken per event. The
    response is chunked and uncompressed, and aiohttp has sent its headers
    in ``prepare``, so a chunk written here is what ``response.write`` would
    have written.

    Events dispatched in one turn of the loop (a group commit's worth, or a
    batch the store socket delivered) leave in one write at the end of the
    turn: one send and, over TLS, one record for all of them, where a write
    per event cost a syscall (and a wake-up of the reader) each. Whoever
    writes to the response by another path calls :meth:`flush` first, so
    the order on the wire stays the order of the events."""

    __slots__ = ("transport", "writer", "progress", "pending", "pending_bytes", "loop")

    def __init__(self, transport: asyncio.Transport, writer: _EventWriter, progress: _Progress) -> None:
        self.transport = transport
        self.writer = writer
        self.progress = progress
        self.pending: list[bytes] = []
        self.pending_bytes = 0
        self.loop = asyncio.get_running_loop()

    def __call__(self, event: ApiEvent) -> bool:
        transport = self.transport
        if transport.is_closing() or transport.get_write_buffer_size() + self.pending_bytes > _HIGH_WATER:
            return False
        chunk = self.writer.chunk(event)
        if not self.pending:
            self.loop.call_soon(self.flush)
        self.pending.append(chunk)
        self.pending_bytes += len(chunk)
        if event.revision > self.progress.revision:
            self.progress.revision = event.revision
        return True

    def flush(self) -> None:
        pending = self.pending
        if not pending:
            return
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        pending.clear()
        self.pending_bytes = 0
        if not self.transport.is_closing():
            self.transport.write(data)


def _direct_sink(request: web.Request, writer: _EventWriter, progress: _Progress) -> _DirectSink | None:
    transport = request.transport
    return None if transport is None else _DirectSink(transport, writer, progress)


async def _stream(
    opener: Callable[[], Awaitable[Subscription]], response: web.StreamResponse,
    writer: _EventWriter, progress: _Progress, sink: _DirectSink | None,
) -> None:
    """Write events in one task per watch. Events that queued up (the initial
    list, a replay, a burst the connection could not take at once) are
    written here with flow control; once caught up, the dispatcher writes
    new ones directly (``_direct_sink``) until the connection's buffer
    fills, and this task sleeps. A client too slow to drain its socket
    stops this task in ``write``; its events then pile up and the watch
    ends with 410 Expired, so it re-lists, as Kubernetes does with a
    watcher that cannot keep up."""
    events: Subscription | None = None
    try:
        events = progress.sub = await opener()
        if sink is not None:
            events.attach(sink)
        async for event in events:
            if event.revision > progress.revision:
                progress.revision = event.revision
            if sink is not None:
                sink.flush()
            await response.write(writer.encode(event))
            if sink is not None:
                events.attach(sink)
    except asyncio.CancelledError:
        raise
    except (ConnectionResetError, ConnectionError):
        return
    except BaseException as exc:  # reported in-stream, as Kubernetes does
        if sink is not None:
            sink.flush()
        with contextlib.suppress(ConnectionError):
            await response.write(_error_line(exc))
    finally:
        if events is not None:
            with contextlib.suppress(BaseException):
                await events.aclose()


def _error_line(exc: BaseException) -> bytes:
    if isinstance(exc, CompactedError):
        status = Gone(f"too old resource version: {exc.requested} ({exc.oldest})").status()
    elif isinstance(exc, ApiError):
        status = exc.status()
    else:
        status = ApiError(f"watch failed: {exc}").status()
    return orjson.dumps({"type": "ERROR", "object": status}) + b"\n"


def _bookmark(target: Target, revision: int) -> ApiEvent:
    rt = target.rt
    return ApiEvent("BOOKMARK", {
        "kind": rt.kind, "apiVersion": rt.api_version,
        "metadata": {"resourceVersion": str(revision)},
    }, revision)


async def serve_watch(ctx: ServerContext, request: web.Request, target: Target, flt: Filter) -> web.StreamResponse:
    rv = request.query.get("resourceVersion")
    send_initial = rv in (None, "", "0")
    timeout = _timeout(request, ctx)  # bad parameters are a 400 before the stream starts
    if not send_initial:
        parse_resource_version(rv)
    if target.name:
        from corral.api.selectors import FieldRequirement

        flt = Filter(flt.labels, flt.fields + [FieldRequirement("metadata.name", target.name, False)])

    def opener() -> Awaitable[Subscription]:
        return open_watch(ctx.store, target.rt, target.namespace, flt,
                          resource_version=rv, send_initial=send_initial, fanout=ctx.watch_fanout)

    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    writer = _EventWriter(ctx, request, target)
    bookmarks = request.query.get("allowWatchBookmarks") in ("true", "1")
    progress = _Progress(int(rv) if rv and rv.isdigit() else 0)
    sink = _direct_sink(request, writer, progress)
    streaming = asyncio.create_task(_stream(opener, response, writer, progress, sink))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        # This task only keeps time: the end of the watch and, when asked
        # for, a bookmark after each quiet interval.
        while (remaining := deadline - loop.time()) > 0 and not streaming.done():
            wait = min(remaining, ctx.settings.watch_bookmark_interval) if bookmarks else remaining
            before = progress.revision
            await asyncio.wait((streaming,), timeout=wait)
            if streaming.done():
                break
            if bookmarks and progress.revision == before and (revision := progress.bookmark()):
                if sink is not None:
                    sink.flush()
                try:
                    await response.write(writer.encode(_bookmark(target, revision)))
                except ConnectionError:
                    return response
    finally:
        streaming.cancel()
        with contextlib.suppress(BaseException):
            await streaming
    if sink is not None:
        sink.flush()
    with contextlib.suppress(ConnectionResetError):
        await response.write_eof()
    return response
