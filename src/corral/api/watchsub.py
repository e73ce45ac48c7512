"""One API watch fed by a resource's dispatcher (see api/fanout.py).

A subscription turns store events into the events its client sees: objects
that move into or out of its selector arrive as ADDED or DELETED, as
Kubernetes sends them. Its order is the initial list, then (when it resumes
from an older revision) a replay from the store, then the live events held
during that replay, then live events as they come. A watcher that falls
``BUFFER`` events behind ends with :class:`CompactedError` (410 Expired) so
that its client re-lists, as a store watch did before.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from corral.resources.types import ResourceType
from corral.store.protocol import CompactedError, EventType, Store, StoreError, Watch, WatchEvent

if TYPE_CHECKING:
    from corral.api.fanout import Dispatcher, WatchFanout
    from corral.api.listwatch import Filter

Obj = dict[str, Any]
BUFFER = 4096


@dataclass(frozen=True, slots=True)
class ApiEvent:
    type: str  # ADDED, MODIFIED, DELETED, BOOKMARK, ERROR
    object: Obj
    revision: int


Sink = Callable[[ApiEvent], bool]
"""Delivers an event straight to the client; False when it cannot now (the
connection's buffer is full or closing), and the event is queued instead."""


def object_fields(rt: ResourceType, obj: Obj) -> dict[str, str]:
    """The values field selectors of ``rt`` match against."""
    meta = obj.get("metadata") or {}
    fields = {"metadata.name": meta.get("name", "")}
    if rt.namespaced:
        fields["metadata.namespace"] = meta.get("namespace", "")
    fields.update(rt.field_selectors(obj))
    return fields


class Change:
    """One store event with its decoded versions and field values, worked
    out at most once however many watchers look at it."""

    __slots__ = ("event", "rt", "_fanout", "_obj", "_prev", "_fields", "_prev_fields")

    def __init__(self, event: WatchEvent, rt: ResourceType, fanout: WatchFanout) -> None:
        self.event = event
        self.rt = rt
        self._fanout = fanout
        self._obj: Obj | None = None
        self._prev: Obj | None = None
        self._fields: dict[str, str] | None = None
        self._prev_fields: dict[str, str] | None = None

    @property
    def is_create(self) -> bool:
        kv = self.event.kv
        return self.event.type is EventType.PUT and kv.create_revision == kv.mod_revision

    @property
    def has_prev(self) -> bool:
        return self.event.prev is not None

    @property
    def obj(self) -> Obj:
        if self._obj is None:
            self._obj = self._fanout.decode(self.event.kv)
        return self._obj

    @property
    def prev(self) -> Obj:
        if self._prev is None:
            assert self.event.prev is not None
            self._prev = self._fanout.decode(self.event.prev)
        return self._prev

    @property
    def fields(self) -> dict[str, str]:
        if self._fields is None:
            self._fields = object_fields(self.rt, self.obj)
        return self._fields

    @property
    def prev_fields(self) -> dict[str, str]:
        if self._prev_fields is None:
            self._prev_fields = object_fields(self.rt, self.prev)
        return self._prev_fields


def index_of(flt: Filter, namespace: str | None) -> tuple[str, str]:
    """Where a watcher registers: the most selective value it pins."""
    pinned = {r.field: r.value for r in flt.fields if not r.negate}
    if "metadata.name" in pinned:
        return ("name", pinned.pop("metadata.name"))
    ns = pinned.pop("metadata.namespace", None)
    for field, value in pinned.items():
        return ("field", f"{field}={value}")
    if namespace:
        return ("namespace", namespace)
    if ns is not None:
        return ("namespace", ns)
    return ("all", "")


class Subscription:
    """An async iterator of :class:`ApiEvent`; ``aclose()`` ends it."""

    def __init__(
        self, fanout: WatchFanout, rt: ResourceType, namespace: str | None, flt: Filter,
        after: int, seen: set[str], initial: list[ApiEvent],
    ) -> None:
        self.rt = rt
        self.flt = flt
        self.prefix = rt.prefix(namespace)
        self.after = after
        self.index = index_of(flt, namespace if rt.namespaced else None)
        self.seen = seen
        self._fanout = fanout
        self._initial = collections.deque(initial)
        self._ready: collections.deque[ApiEvent] = collections.deque()
        self._held: list[Change] | None = None
        self._store_watch: Watch | None = None
        self._store_events: AsyncIterator[WatchEvent] | None = None
        self._replay_until: int | None = None
        self._sink: Sink | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._error: BaseException | None = None
        self._closed = False
        self._delivered = after
        self._dispatcher: Dispatcher | None = None

    # -- set up by the dispatcher ------------------------------------------

    def _private(self, store: Store) -> None:
        """Read a store watch of its own for the whole watch."""
        self._store_watch = store.watch(self.prefix, self.after)
        self._store_events = aiter(self._store_watch)

    def _replay_from(self, watch: Watch, until: int) -> None:
        """Replay (after, until] from ``watch``, holding live events meanwhile."""
        self._store_watch = watch
        self._store_events = aiter(watch)
        self._replay_until = until
        self._held = []

    # -- fed by the dispatcher, on the loop --------------------------------

    def _offer(self, change: Change) -> None:
        if self._closed or self._error is not None or change.event.kv.mod_revision <= self.after:
            return
        if self._held is not None:
            self._held.append(change)
            if len(self._held) > BUFFER:
                self._overflow(self._held[0].event.kv.mod_revision)
            return
        self._accept(change)

    def _accept(self, change: Change) -> None:
        event = self._classify(change)
        if event is None:
            return
        sink = self._sink
        if sink is not None and not self._ready:
            try:
                if sink(event):
                    self._delivered = event.revision
                    return
            except Exception:  # noqa: S110 - the consumer writes it and meets the error itself
                pass
        self._sink = None
        self._ready.append(event)
        if len(self._ready) > BUFFER:
            self._overflow(self._ready[0].revision)
            return
        self._wake()

    def _overflow(self, oldest: int) -> None:
        self._stop(CompactedError(self._delivered, oldest))

    def _stop(self, error: BaseException | None) -> None:
        """End the watch: with ``error`` raised to the consumer, else quietly."""
        if error is None:
            self._closed = True
        else:
            self._error = error
        self._sink = None
        self._ready.clear()
        self._held = None
        if self._dispatcher is not None:
            self._dispatcher.remove(self)
            self._dispatcher = None
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _classify(self, change: Change) -> ApiEvent | None:
        kv = change.event.kv
        if not kv.key.startswith(self.prefix):
            return None
        flt, rt = self.flt, self.rt
        obj = change.obj
        now = flt.matches(rt, obj, change.fields if flt.fields else None)
        if change.event.type is EventType.DELETE:
            etype = "DELETED" if (now or kv.key in self.seen) else None
        elif change.is_create:
            etype = "ADDED" if now else None
        elif flt.empty:
            etype = "MODIFIED"
        else:
            if change.has_prev:
                was = flt.matches(rt, change.prev, change.prev_fields if flt.fields else None)
            else:
                was = kv.key in self.seen
            etype = ("MODIFIED" if was else "ADDED") if now else ("DELETED" if was else None)
        if etype is None:
            return None
        if etype == "DELETED":
            self.seen.discard(kv.key)
        else:
            self.seen.add(kv.key)
        return ApiEvent(etype, obj, kv.mod_revision)

    # -- consumer side -----------------------------------------------------

    def attach(self, sink: Sink) -> bool:
        """Have later events written by ``sink`` as they come, if nothing is
        waiting to be sent first; it stays attached until it refuses one."""
        if (self._initial or self._ready or self._store_events is not None
                or self._closed or self._error is not None):
            return False
        self._sink = sink
        return True

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> ApiEvent:
        while True:
            if self._closed:
                raise StopAsyncIteration
            if self._error is not None:
                raise self._error
            if self._initial:
                return self._initial.popleft()
            if self._ready:
                event = self._ready.popleft()
                self._delivered = event.revision
                return event
            if self._store_events is not None:
                event = await self._from_store()
                if event is not None:
                    self._delivered = event.revision
                    return event
                continue
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    async def _from_store(self) -> ApiEvent | None:
        assert self._store_events is not None
        try:
            event = await anext(self._store_events)
        except StopAsyncIteration:
            await self._close_store_watch()
            self._stop(None)
            return None
        except StoreError as exc:
            await self._close_store_watch()
            self._stop(exc)
            return None
        until = self._replay_until
        revision = event.kv.mod_revision
        if until is not None and revision > until:
            await self._end_replay()  # held live events carry it
            return None
        result = self._classify(Change(event, self.rt, self._fanout))
        if until is not None and revision == until:
            await self._end_replay()
        return result

    async def _end_replay(self) -> None:
        await self._close_store_watch()
        held, self._held = self._held or [], None
        for change in held:
            self._accept(change)

    async def _close_store_watch(self) -> None:
        watch, self._store_watch, self._store_events = self._store_watch, None, None
        self._replay_until = None
        if watch is not None:
            await watch.close()

    async def aclose(self) -> None:
        """End the watch; idempotent."""
        if not self._closed:
            self._stop(None)
        await self._close_store_watch()

    @property
    def closed(self) -> bool:
        return self._closed

    def progress(self) -> int:
        """A revision up to which this watcher has been sent every event it
        matches: what a bookmark may carry. Once caught up that is the
        dispatcher's newest event, not just the newest one sent, so a quiet
        watcher (a kubelet's) resumes from near now instead of replaying
        every write to its resource since its last event."""
        dispatcher = self._dispatcher
        if (dispatcher is None or dispatcher.last is None or self._initial or self._ready
                or self._store_events is not None or self._held is not None):
            return self._delivered
        return max(self._delivered, dispatcher.last)
