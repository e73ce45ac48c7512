"""Recording Kubernetes Events ("why is my pod pending?") without ever
slowing or failing the component that records them.

``record`` only puts the event on a bounded queue; ``run`` writes them. Like
Kubernetes' event correlator, a repeat of the same event on the same object
(same uid, type, reason and message) bumps ``count`` and ``lastTimestamp`` of
the existing Event instead of creating another, so a crash-looping pod makes
one Event with a count, not thousands of objects.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from corral.client.api import ApiClient
from corral.client.errors import ApiError, NotFoundError
from corral.client.resources import EVENTS
from corral.clock import Clock, RealClock, format_timestamp

log = logging.getLogger(__name__)

EVENT_TYPES = ("Normal", "Warning")
MAX_MESSAGE = 1024


@dataclass
class _Pending:
    obj: dict[str, Any]
    type_: str
    reason: str
    message: str
    at: str


@dataclass
class _Seen:
    namespace: str
    name: str
    count: int


class EventRecorder:
    def __init__(
        self,
        client: ApiClient,
        component: str,
        host: str | None = None,
        clock: Clock | None = None,
        *,
        max_pending: int = 1000,
        cache_size: int = 4096,
    ) -> None:
        self.client = client
        self.component = component
        self.host = host
        self.max_pending = max_pending
        self.cache_size = cache_size
        self.dropped = 0  # events refused because the queue was full or closed
        self.failed = 0  # events the API did not accept
        self.written = 0  # creates and count bumps that succeeded
        self._clock = clock or RealClock()
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue()
        self._seen: OrderedDict[tuple[str, ...], _Seen] = OrderedDict()
        self._last_ns = 0
        self._closed = False
        self._running = False
        self._stopped = asyncio.Event()

    def record(self, obj: dict[str, Any], type_: str, reason: str, message: str) -> None:
        """Queue an Event about ``obj``; never blocks and never raises."""
        try:
            if type_ not in EVENT_TYPES:
                raise ValueError(f"type: expected Normal or Warning, got {type_!r}")
            if not isinstance(obj.get("metadata"), dict) or not obj["metadata"].get("name"):
                raise ValueError("involvedObject: metadata.name is required")
            if self._closed or self._queue.qsize() >= self.max_pending:
                self.dropped += 1
                if self.dropped == 1 or self.dropped % 100 == 0:
                    log.warning("event recorder: dropped %d events (queue full or closed)", self.dropped)
                return
            at = format_timestamp(self._clock.now())
            self._queue.put_nowait(_Pending(obj, type_, reason, message[:MAX_MESSAGE], at))
        except Exception:
            self.failed += 1
            log.exception("event recorder: cannot record %s %s", type_, reason)

    async def run(self) -> None:
        """Write queued events until :meth:`close`."""
        self._running = True
        self._stopped.clear()
        try:
            while True:
                item = await self._queue.get()
                if item is None:
                    return
                try:
                    await self._write(item)
                    self.written += 1
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self.failed += 1
                    log.warning("event recorder: %s %s not written: %s", item.type_, item.reason, exc)
        finally:
            self._running = False
            self._stopped.set()

    async def close(self, timeout: float = 5.0) -> None:
        """Stop taking events and let ``run`` write what is queued, for at most ``timeout``."""
        if self._closed:
            return
        self._closed = True
        self._queue.put_nowait(None)
        if not self._running:
            return
        try:
            async with asyncio.timeout(timeout):
                await self._stopped.wait()
        except TimeoutError:
            log.warning("event recorder: %d events unwritten at close", self._queue.qsize())

    async def _write(self, item: _Pending) -> None:
        meta = item.obj["metadata"]
        ident = meta.get("uid") or f"{item.obj.get('kind')}/{meta.get('namespace')}/{meta['name']}"
        key = (ident, item.type_, item.reason, item.message)
        seen = self._seen.get(key)
        if seen is not None:
            try:
                await self.client.patch(
                    EVENTS,
                    seen.name,
                    {"count": seen.count + 1, "lastTimestamp": item.at},
                    seen.namespace,
                )
                seen.count += 1
                self._seen.move_to_end(key)
                return
            except NotFoundError:
                del self._seen[key]  # expired on the server: start a new one
        created = await self._create(item)
        cmeta = created.get("metadata") or {}
        self._seen[key] = _Seen(cmeta.get("namespace", ""), cmeta.get("name", ""), 1)
        while len(self._seen) > self.cache_size:
            self._seen.popitem(last=False)

    async def _create(self, item: _Pending) -> dict[str, Any]:
        meta = item.obj["metadata"]
        namespace = meta.get("namespace") or "default"  # cluster-scoped objects
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": self._event_name(meta["name"]), "namespace": namespace},
            "involvedObject": {
                "kind": item.obj.get("kind", ""),
                "apiVersion": item.obj.get("apiVersion", ""),
                "namespace": meta.get("namespace", ""),
                "name": meta["name"],
                "uid": meta.get("uid", ""),
                "resourceVersion": meta.get("resourceVersion", ""),
            },
            "reason": item.reason,
            "message": item.message,
            "type": item.type_,
            "count": 1,
            "firstTimestamp": item.at,
            "lastTimestamp": item.at,
            "source": {"component": self.component, **({"host": self.host} if self.host else {})},
            "reportingComponent": self.component,
            "reportingInstance": self.host or "",
        }
        try:
            return await self.client.create(EVENTS, body, namespace)
        except ApiError as exc:
            if exc.reason != "AlreadyExists":
                raise
            body["metadata"]["name"] = self._event_name(meta["name"])
            return await self.client.create(EVENTS, body, namespace)

    def _event_name(self, obj_name: str) -> str:
        """``<object>.<16 hex digits>``: Kubernetes uses the time in ns; ours
        is also forced to increase so that a frozen FakeClock stays unique."""
        now_ns = int(self._clock.now().timestamp() * 1_000_000_000)
        self._last_ns = max(now_ns, self._last_ns + 1)
        return f"{obj_name}.{self._last_ns:016x}"
