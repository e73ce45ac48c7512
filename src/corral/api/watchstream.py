"""Streaming a watch over HTTP: one JSON event per line, flushed per event.

The stream stays open until ``timeoutSeconds`` (bounded by the server's own
maximum) or until the client goes away; bookmarks, when asked for, let an
informer advance its resourceVersion through quiet periods so a reconnect
does not replay or fall off the history window.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from corral.api.errors import ApiError, BadRequest, Gone
from corral.api.listwatch import ApiEvent, Filter, parse_resource_version, watch_objects
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


WATCH_BUFFER = 1000


async def _pump(events: Any, queue: asyncio.Queue[Any]) -> None:
    """Move events to the writer's queue. A client too slow to keep a
    bounded backlog is cut off (it will re-list), as Kubernetes does."""
    try:
        async for event in events:
            if queue.full():
                await queue.put(Gone("watch closed: the client is too slow to keep up"))
                return
            queue.put_nowait(event)
        await queue.put(None)
    except asyncio.CancelledError:
        raise
    except BaseException as exc:  # handed to the writer, which reports it in-stream
        await queue.put(exc)
    finally:
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
    events = watch_objects(ctx.store, target.rt, target.namespace, flt,
                           resource_version=rv, send_initial=send_initial, fanout=ctx.watch_fanout)
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    writer = _EventWriter(ctx, request, target)
    bookmarks = request.query.get("allowWatchBookmarks") in ("true", "1")
    queue: asyncio.Queue[ApiEvent | BaseException | None] = asyncio.Queue(WATCH_BUFFER)
    pump = asyncio.create_task(_pump(events, queue))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last_revision = int(rv) if rv and rv.isdigit() else 0
    try:
        while (remaining := deadline - loop.time()) > 0:
            wait = min(remaining, ctx.settings.watch_bookmark_interval) if bookmarks else remaining
            try:
                # A busy stream takes from the queue directly; only an idle
                # one pays for a timer.
                item = queue.get_nowait() if not queue.empty() else await asyncio.wait_for(queue.get(), wait)
            except TimeoutError:
                if bookmarks and last_revision:
                    await response.write(writer.encode(_bookmark(target, last_revision)))
                continue
            if item is None:
                break
            if isinstance(item, BaseException):
                await response.write(_error_line(item))
                break
            last_revision = max(last_revision, item.revision)
            await response.write(writer.encode(item))
    except ConnectionResetError:
        return response
    finally:
        pump.cancel()
        with contextlib.suppress(BaseException):
            await pump
    with contextlib.suppress(ConnectionResetError):
        await response.write_eof()
    return response
