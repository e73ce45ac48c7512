"""A small in-test HTTP server speaking the Kubernetes list/watch wire format.

It exists to test the client's logic (paths, headers, error mapping, retries,
watch framing, informer re-list diffs) where the test must control exactly
what the server says and when: scripted failures, raw watch bytes, 410s.
Integration tests run against the real corral server instead.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeApi:
    objects: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # collection -> name -> obj
    history: list[tuple[int, str, str, dict[str, Any]]] = field(default_factory=list)
    requests: list[Seen] = field(default_factory=list)
    # (method, status, body, query items that must match)
    scripted: list[tuple[str, int, dict[str, Any], dict[str, str]]] = field(default_factory=list)
    rv: int = 0
    compacted: int = 0  # watches from a revision below this get a 410 ERROR event
    watches: list[asyncio.Queue[Any]] = field(default_factory=list)
    url: str = ""
    watch_started: asyncio.Event = field(default_factory=asyncio.Event)

    # -- test controls -------------------------------------------------------

    def script(self, method: str, status: int, reason: str = "", message: str = "",
               when: dict[str, str] | None = None, **extra: Any) -> None:
        """The next ``method`` request (whose query has ``when``) answers
        ``status`` with a Status body."""
        body = {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                "reason": reason, "message": message, "code": status, **extra}
        self.scripted.append((method, status, body, when or {}))

    def seed(self, collection: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Store without telling watchers (as if it happened during a gap)."""
        self.rv += 1
        obj = orjson.loads(orjson.dumps(obj))
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self.objects.setdefault(collection, {})[obj["metadata"]["name"]] = obj
        return obj

    def unseed(self, collection: str, name: str) -> None:
        self.rv += 1
        del self.objects[collection][name]

    def emit(self, collection: str, type_: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Apply a change and stream it to every watcher."""
        if type_ == "DELETED":
            self.rv += 1
            obj = self.objects[collection].pop(obj["metadata"]["name"])
            obj = {**obj, "metadata": {**obj["metadata"], "resourceVersion": str(self.rv)}}
        else:
            obj = self.seed(collection, obj)
        self.history.append((self.rv, collection, type_, obj))
        self.push({"type": type_, "object": obj})
        return obj

    def push(self, item: Any) -> None:
        """Send a dict event, raw bytes, or None (end the stream) to watchers."""
        for q in list(self.watches):
            q.put_nowait(item)

    def end_watches(self) -> None:
        self.push(None)

    async def wait_watchers(self, n: int = 1, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.watches) < n:
                await asyncio.sleep(0.005)

    # -- HTTP ------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(Seen(request.method, request.path, dict(request.query),
                                  dict(request.headers), body))
        for i, (method, status, sbody, when) in enumerate(self.scripted):
            if method == request.method and all(request.query.get(k) == v for k, v in when.items()):
                del self.scripted[i]
                return _json(sbody, status)
        parts = request.path.strip("/").split("/")
        # /api/v1/[namespaces/NS/]PLURAL[/NAME]
        rest = parts[2:] if parts[0] == "api" else parts[3:]
        if len(rest) >= 3 and rest[0] == "namespaces":
            rest = rest[2:]
        collection, name = rest[0], (rest[1] if len(rest) > 1 else None)
        store = self.objects.setdefault(collection, {})
        if request.method == "GET" and name is None:
            if request.query.get("watch") in ("1", "true"):
                return await self._watch(request, collection)
            return self._list(request, collection)
        if request.method == "GET":
            return _json(store[name]) if name in store else _status(404, "NotFound", name)
        if request.method == "POST":
            obj = orjson.loads(body)
            if obj["metadata"]["name"] in store:
                return _status(409, "AlreadyExists", obj["metadata"]["name"])
            return _json(self.emit(collection, "ADDED", obj), 201)
        if name not in store:
            return _status(404, "NotFound", name or "")
        if request.method == "PUT":
            obj = orjson.loads(body)
            if obj["metadata"].get("resourceVersion") != store[name]["metadata"]["resourceVersion"]:
                return _status(409, "Conflict", name)
            return _json(self.emit(collection, "MODIFIED", obj))
        if request.method == "PATCH":
            merged = _merge(store[name], orjson.loads(body))
            return _json(self.emit(collection, "MODIFIED", merged))
        if request.method == "DELETE":
            return _json(self.emit(collection, "DELETED", store[name]))
        return _status(405, "MethodNotAllowed", "")

    def _list(self, request: web.Request, collection: str) -> web.Response:
        items = sorted(self.objects.get(collection, {}).values(), key=lambda o: o["metadata"]["name"])
        limit = int(request.query.get("limit", "0"))
        start = int(request.query.get("continue", "0") or 0)
        meta: dict[str, Any] = {"resourceVersion": str(self.rv)}
        if limit:
            page = items[start:start + limit]
            if start + limit < len(items):
                meta["continue"] = str(start + limit)
            items = page
        return _json({"kind": "List", "apiVersion": "v1", "metadata": meta,
                      "items": [{k: v for k, v in o.items() if k not in ("kind", "apiVersion")}
                                for o in items]})

    async def _watch(self, request: web.Request, collection: str) -> web.StreamResponse:
        rv = int(request.query.get("resourceVersion") or 0)
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        if rv and rv < self.compacted:
            gone = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 410,
                    "reason": "Expired", "message": f"too old resource version: {rv}"}
            await resp.write(orjson.dumps({"type": "ERROR", "object": gone}) + b"\n")
            return resp
        q: asyncio.Queue[Any] = asyncio.Queue()
        for erv, coll, type_, obj in self.history:
            if erv > rv and coll == collection:
                q.put_nowait({"type": type_, "object": obj})
        self.watches.append(q)
        self.watch_started.set()
        try:
            while (item := await q.get()) is not None:
                data = item if isinstance(item, bytes) else orjson.dumps(item) + b"\n"
                await resp.write(data)
        finally:
            self.watches.remove(q)
        return resp


def _merge(base: Any, patch: Any) -> Any:
    if not isinstance(patch, dict) or not isinstance(base, dict):
        return patch
    out = dict(base)
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = _merge(base.get(k), v)
    return out


def _json(obj: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(obj), status=status, content_type="application/json")


def _status(code: int, reason: str, name: str) -> web.Response:
    return _json({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code,
                  "reason": reason, "message": f'"{name}" {reason}'}, code)


@contextlib.asynccontextmanager
async def serve(api: FakeApi | None = None):  # type: ignore[no-untyped-def]
    api = api or FakeApi()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", api.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    api.url = f"http://127.0.0.1:{port}"
    try:
        yield api
    finally:
        api.end_watches()
        await runner.cleanup()
