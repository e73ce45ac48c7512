"""Recording Kubernetes Events ("why is my pod pending?") without ever
slowing or failing the component that records them, and without letting
them crowd out the writes that do the work.

``record`` only notes the event; ``run`` writes them. Between the two sit
client-go's event correlator and a pace:

* **correlation**: a repeat of the same event on the same object (same uid,
  type, reason and message) bumps ``count`` and ``lastTimestamp`` of the
  existing Event with a PATCH instead of creating another; repeats recorded
  before the first is written are merged, so they cost no write at all;
* **aggregation**: more than ``aggregate_max`` (10) events of one reason on
  one object with different messages within ``aggregate_window`` (10 min)
  become one Event whose message starts "(combined from similar events): ";
* **spam filter**: each (component, object) has a token bucket (burst 25,
  one more every 5 minutes); events past it are filtered, as Kubernetes'
  EventSourceObjectSpamFilter does;
* **pace**: writes go out through ``concurrency`` workers at most ``qps``
  per second (burst ``burst``), oldest first, so a burst of 5,000 pods
  scheduled at once costs the API server 5,000 Event writes spread over a
  minute, not 5,000 writes competing with the bindings;
* **yield**: a component whose own writes are what its users wait for
  (the agent starting a burst of pods) passes ``yield_to``, an Event set
  while it is idle; writes then wait for it, each at most ``max_defer``
  seconds after it was recorded (the Events of a 100-pod burst were 2 of
  the 7 API requests per pod, all on the server's one core). Every other
  recorder running on the same event loop waits for it too: in ``corral
  up`` the scheduler, the controllers and the agent share one loop and one
  API server, so the scheduler's 100 "Scheduled" Events of a burst were
  written while the agent started those pods, not after.

Only when ``max_pending`` distinct events are waiting is a new one dropped
(counted in ``dropped``, logged): memory stays bounded whatever the load.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from corral.client.api import ApiClient
from corral.client.errors import ApiError, NotFoundError
from corral.client.resources import EVENTS
from corral.clock import Clock, RealClock, format_timestamp

log = logging.getLogger(__name__)

EVENT_TYPES = ("Normal", "Warning")
MAX_MESSAGE = 1024
COMBINED_PREFIX = "(combined from similar events): "

Key = tuple[str, str, str, str]  # (object identity, type, reason, message)

_BUSY_GATES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, list[asyncio.Event]] = (
    weakref.WeakKeyDictionary()
)
"""Per event loop, the ``yield_to`` of its running recorders: every recorder
on that loop holds its writes while one of them is clear."""


@dataclass
class _Pending:
    obj: dict[str, Any]
    type_: str
    reason: str
    message: str
    at: str
    since: float = 0.0  # clock.monotonic() when first recorded
    count: int = 1  # records merged into this one write


@dataclass
class _Seen:
    namespace: str
    name: str
    count: int


@dataclass
class _Bucket:
    tokens: float
    at: float


@dataclass
class _Similar:
    """Distinct messages of one (object, type, reason) in the current window."""

    since: float
    messages: set[str] = field(default_factory=set)


class EventRecorder:
    def __init__(
        self,
        client: ApiClient,
        component: str,
        host: str | None = None,
        clock: Clock | None = None,
        *,
        max_pending: int = 10_000,
        cache_size: int = 4096,
        qps: float = 50.0,
        burst: int = 100,
        concurrency: int = 4,
        spam_burst: int = 25,
        spam_qps: float = 1 / 300,
        aggregate_max: int = 10,
        aggregate_window: float = 600.0,
        yield_to: asyncio.Event | None = None,
        max_defer: float = 5.0,
    ) -> None:
        if qps <= 0 or burst < 1 or concurrency < 1:
            raise ValueError("qps, burst and concurrency: must be positive")
        self.client = client
        self.component = component
        self.host = host
        self.max_pending = max_pending
        self.cache_size = cache_size
        self.qps, self.burst, self.concurrency = qps, burst, concurrency
        self.spam_burst, self.spam_qps = spam_burst, spam_qps
        self.aggregate_max, self.aggregate_window = aggregate_max, aggregate_window
        self.yield_to, self.max_defer = yield_to, max_defer
        self.dropped = 0  # refused: too many distinct events waiting, or closed
        self.filtered = 0  # refused by the per-object spam filter
        self.failed = 0  # events the API did not accept (or bad input)
        self.written = 0  # events (records) that reached the API
        self.requests = 0  # creates and count bumps sent
        self._clock = clock or RealClock()
        self._pending: OrderedDict[Key, _Pending] = OrderedDict()
        self._inflight: set[Key] = set()
        self._seen: OrderedDict[Key, _Seen] = OrderedDict()
        self._spam: OrderedDict[str, _Bucket] = OrderedDict()
        self._similar: OrderedDict[tuple[str, str, str], _Similar] = OrderedDict()
        self._tokens = float(burst)
        self._tokens_at = self._clock.monotonic()
        self._wake = asyncio.Event()
        self._last_ns = 0
        self._closed = False
        self._running = False
        self._stopped = asyncio.Event()
        self._closing = asyncio.Event()

    # -- recording -------------------------------------------------------------

    def record(self, obj: dict[str, Any], type_: str, reason: str, message: str) -> None:
        """Note an Event about ``obj``; never blocks and never raises."""
        try:
            if type_ not in EVENT_TYPES:
                raise ValueError(f"type: expected Normal or Warning, got {type_!r}")
            if not isinstance(obj.get("metadata"), dict) or not obj["metadata"].get("name"):
                raise ValueError("involvedObject: metadata.name is required")
            if self._closed:
                self._drop("closed")
                return
            ident = _identity(obj)
            if not self._allowed(ident):
                self.filtered += 1
                return
            message = self._aggregate(ident, type_, reason, message[:MAX_MESSAGE])
            key = (ident, type_, reason, message)
            at = format_timestamp(self._clock.now())
            pending = self._pending.get(key)  # (one being written is no longer here)
            if pending is not None:
                pending.count += 1
                pending.at = at
                return
            if len(self._pending) >= self.max_pending:
                self._drop("too many events waiting")
                return
            self._pending[key] = _Pending(obj, type_, reason, message, at, self._clock.monotonic())
            self._wake.set()
        except Exception:
            self.failed += 1
            log.exception("event recorder: cannot record %s %s", type_, reason)

    def _drop(self, why: str) -> None:
        self.dropped += 1
        if self.dropped == 1 or self.dropped % 1000 == 0:
            log.warning("event recorder %s: dropped %d events (%s)", self.component, self.dropped, why)

    def _allowed(self, ident: str) -> bool:
        """The spam filter: a token bucket per (component, object)."""
        now = self._clock.monotonic()
        bucket = self._spam.get(ident)
        if bucket is None:
            bucket = self._spam[ident] = _Bucket(float(self.spam_burst), now)
            while len(self._spam) > self.cache_size:
                self._spam.popitem(last=False)
        else:
            self._spam.move_to_end(ident)
            bucket.tokens = min(float(self.spam_burst), bucket.tokens + (now - bucket.at) * self.spam_qps)
            bucket.at = now
        if bucket.tokens < 1:
            return False
        bucket.tokens -= 1
        return True

    def _aggregate(self, ident: str, type_: str, reason: str, message: str) -> str:
        """The message to use: past ``aggregate_max`` distinct messages of one
        reason on one object in the window, the combined form."""
        now = self._clock.monotonic()
        key = (ident, type_, reason)
        similar = self._similar.get(key)
        if similar is None or now - similar.since > self.aggregate_window:
            similar = self._similar[key] = _Similar(now)
            while len(self._similar) > self.cache_size:
                self._similar.popitem(last=False)
        similar.messages.add(message)
        if len(similar.messages) > self.aggregate_max:
            return COMBINED_PREFIX + message
        return message

    # -- writing ---------------------------------------------------------------

    async def run(self) -> None:
        """Write noted events until :meth:`close` (then what is waiting)."""
        self._running = True
        self._stopped.clear()
        slots = asyncio.Semaphore(self.concurrency)
        tasks: set[asyncio.Task[None]] = set()
        gates = _BUSY_GATES.setdefault(asyncio.get_running_loop(), [])
        if self.yield_to is not None:
            gates.append(self.yield_to)
        try:
            while True:
                key = self._next_key()
                if key is None:
                    if self._closed and not self._inflight:
                        return
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                await self._take_token()
                await self._yield(self._pending[key].since)
                await slots.acquire()
                item = self._pending.pop(key)
                self._inflight.add(key)
                task = asyncio.ensure_future(self._write_one(key, item))
                tasks.add(task)

                def done(t: asyncio.Task[None], key: Key = key) -> None:
                    tasks.discard(t)
                    self._inflight.discard(key)
                    slots.release()
                    self._wake.set()

                task.add_done_callback(done)
        finally:
            if self.yield_to is not None:
                gates.remove(self.yield_to)
            for task in list(tasks):
                task.cancel()
            self._running = False
            self._stopped.set()

    def _next_key(self) -> Key | None:
        """The oldest waiting event whose object's same event is not being
        written (its repeat must PATCH what that write creates)."""
        for key in self._pending:
            if key not in self._inflight:
                return key
        return None

    async def _take_token(self) -> None:
        while True:
            now = self._clock.monotonic()
            self._tokens = min(float(self.burst), self._tokens + (now - self._tokens_at) * self.qps)
            self._tokens_at = now
            if self._tokens >= 1:
                self._tokens -= 1
                return
            await self._clock.sleep((1 - self._tokens) / self.qps)

    async def _yield(self, since: float) -> None:
        """Until no component on this loop is busy, ``max_defer`` after
        ``since``, or close."""
        while not self._closed:
            busy = self._busy_gate()
            if busy is None:
                return
            left = since + self.max_defer - self._clock.monotonic()
            if left <= 0:
                return
            waits = [asyncio.ensure_future(busy.wait()), asyncio.ensure_future(self._closing.wait()),
                     asyncio.ensure_future(self._clock.sleep(left))]
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waits:
                    waiter.cancel()

    def _busy_gate(self) -> asyncio.Event | None:
        """This recorder's ``yield_to`` or another running recorder's on
        this loop, if one is clear (its component busy)."""
        if self.yield_to is not None and not self.yield_to.is_set():
            return self.yield_to
        for gate in _BUSY_GATES.get(asyncio.get_running_loop(), ()):
            if not gate.is_set():
                return gate
        return None

    async def _write_one(self, key: Key, item: _Pending) -> None:
        try:
            await self._write(key, item)
            self.written += item.count
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.failed += item.count
            log.warning("event recorder: %s %s not written: %s", item.type_, item.reason, exc)

    async def close(self, timeout: float = 5.0) -> None:
        """Stop taking events and let ``run`` write what is waiting, for at most ``timeout``."""
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        self._closing.set()
        if not self._running:
            return
        try:
            async with asyncio.timeout(timeout):
                await self._stopped.wait()
        except TimeoutError:
            log.warning("event recorder: %d events unwritten at close", len(self._pending))

    async def _write(self, key: Key, item: _Pending) -> None:
        seen = self._seen.get(key)
        if seen is not None:
            self.requests += 1
            try:
                await self.client.patch(EVENTS, seen.name,
                                        {"count": seen.count + item.count, "lastTimestamp": item.at},
                                        seen.namespace)
                seen.count += item.count
                self._seen.move_to_end(key)
                return
            except NotFoundError:
                del self._seen[key]  # expired on the server: start a new one
        self.requests += 1
        namespace, name = await self._create(item)
        self._seen[key] = _Seen(namespace, name, item.count)
        while len(self._seen) > self.cache_size:
            self._seen.popitem(last=False)

    async def _create(self, item: _Pending) -> tuple[str, str]:
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
            "count": item.count,
            "firstTimestamp": item.at,
            "lastTimestamp": item.at,
            "source": {"component": self.component, **({"host": self.host} if self.host else {})},
            "reportingComponent": self.component,
            "reportingInstance": self.host or "",
        }
        # Only the name is kept (for a later count patch): the created
        # Event's head, not the whole answer decoded.
        try:
            created = await self.client.create(EVENTS, body, namespace, full=False)
        except ApiError as exc:
            if exc.reason != "AlreadyExists":
                raise
            body["metadata"]["name"] = self._event_name(meta["name"])
            created = await self.client.create(EVENTS, body, namespace, full=False)
        return namespace, str((created.get("metadata") or {}).get("name") or body["metadata"]["name"])

    def _event_name(self, obj_name: str) -> str:
        """``<object>.<16 hex digits>``: Kubernetes uses the time in ns; ours
        is also forced to increase so that a frozen FakeClock stays unique."""
        now_ns = int(self._clock.now().timestamp() * 1_000_000_000)
        self._last_ns = max(now_ns, self._last_ns + 1)
        return f"{obj_name}.{self._last_ns:016x}"


def _identity(obj: dict[str, Any]) -> str:
    meta = obj["metadata"]
    return meta.get("uid") or f"{obj.get('kind')}/{meta.get('namespace')}/{meta['name']}"
