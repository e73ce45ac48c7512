"""Work shared by every watcher of the same events, and indexed dispatch.

A thousand watchers of one resource receive the same stored versions; each
used to decode the stored bytes and encode the JSON line itself, which made
one event cost a thousand decodes and encodes. Here each version is decoded
once and each event line encoded once; the results are shared, so callers
must treat them as read-only.

Watchers of one resource also share one store watch: a :class:`Dispatcher`
per resource reads it and hands each event only to the watchers that can
match it, as Kubernetes' watch cache does with its "indexed triggers". A
watcher whose field selector pins ``metadata.name`` or another field with
``=`` (a kubelet's ``spec.nodeName=NODE``), or whose path names a namespace,
is registered under that value; an event goes to the watchers registered
under the object's old and new value (both, so a watcher sees an object
leave its set) plus the unindexed ones. One pod write then costs the few
watchers that care, not one wake-up per watcher of pods. Matching happens in
the dispatcher, so a watcher is woken only for an event it will send, and a
watcher that is caught up gets the event written to its connection at once
through a :data:`Sink` (no task switch per watcher).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import orjson

from corral.api.codec import decode
from corral.api.watchsub import ApiEvent, Change, Sink, Subscription, object_fields
from corral.resources.types import ResourceType
from corral.store.protocol import EventType, KeyValue, Store, StoreError, Watch, WatchEvent

if TYPE_CHECKING:
    from corral.api.listwatch import Filter

__all__ = ["ApiEvent", "Dispatcher", "Sink", "Subscription", "WatchFanout", "frame", "object_fields"]

log = logging.getLogger(__name__)

Obj = dict[str, Any]
Group = dict[Subscription, None]
LINGER_SECONDS = 60.0
"""How long a resource's dispatcher outlives its last watcher: informers
reconnect in a loop, and a dispatcher that has seen events lets a watcher
resuming from an older revision join without a watch of its own."""


def frame(line: bytes) -> bytes:
    """One HTTP/1.1 chunk carrying ``line``."""
    return b"%x\r\n%b\r\n" % (len(line), line)


class WatchFanout:
    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._objects: OrderedDict[tuple[str, int], Obj] = OrderedDict()
        self._lines: OrderedDict[tuple[str, str, int], tuple[bytes, bytes]] = OrderedDict()
        self._dispatchers: dict[tuple[int, str], Dispatcher] = {}

    def decode(self, kv: KeyValue) -> Obj:
        key = (kv.key, kv.mod_revision)
        obj = self._objects.get(key)
        if obj is None:
            obj = decode(kv)
            self._objects[key] = obj
            if len(self._objects) > self._size:
                self._objects.popitem(last=False)
        return obj

    def _encoded(self, event_type: str, obj: Obj, revision: int) -> tuple[bytes, bytes]:
        meta = obj.get("metadata") or {}
        key = (event_type, f"{meta.get('namespace', '')}/{meta.get('name', '')}", revision)
        pair = self._lines.get(key)
        if pair is None:
            line = orjson.dumps({"type": event_type, "object": obj}) + b"\n"
            pair = (line, frame(line))
            self._lines[key] = pair
            if len(self._lines) > self._size:
                self._lines.popitem(last=False)
        return pair

    def line(self, event_type: str, obj: Obj, revision: int) -> bytes:
        """The JSON line of a plain (non-Table) event."""
        return self._encoded(event_type, obj, revision)[0]

    def chunk(self, event_type: str, obj: Obj, revision: int) -> bytes:
        """That line framed as one HTTP chunk, the same bytes for every watcher."""
        return self._encoded(event_type, obj, revision)[1]

    async def subscribe(
        self,
        store: Store,
        rt: ResourceType,
        namespace: str | None,
        flt: Filter,
        after: int,
        *,
        seen: set[str] | None = None,
        initial: list[ApiEvent] | None = None,
    ) -> Subscription:
        """A watch of ``rt`` (in ``namespace``) for events after ``after``;
        ``initial`` events come first, ``seen`` are the keys the watcher
        already has (the initial list)."""
        sub = Subscription(self, rt, namespace, flt, after, seen or set(), initial or [])
        key = (id(store), rt.storage_prefix)
        dispatcher = self._dispatchers.get(key)
        if dispatcher is None or dispatcher.store is not store:
            dispatcher = Dispatcher(self, store, rt)
            self._dispatchers[key] = dispatcher
        await dispatcher.add(sub)
        return sub

    def _forget(self, dispatcher: Dispatcher) -> None:
        key = (id(dispatcher.store), dispatcher.prefix)
        if self._dispatchers.get(key) is dispatcher:
            del self._dispatchers[key]

    def dispatcher(self, store: Store, rt: ResourceType) -> Dispatcher | None:
        return self._dispatchers.get((id(store), rt.storage_prefix))


class Dispatcher:
    """One store watch of a resource, its events handed to the watchers
    registered under the values they can match.

    ``last`` is the revision of the newest event handed out: a watcher
    resuming from below it replays (after, last] from the store on its own,
    holding live events meanwhile; one from at or above it needs no replay.
    Before the first event a watcher from below the dispatcher's starting
    revision keeps a store watch of its own (nothing marks where a replay
    of it would meet the live stream)."""

    def __init__(self, fanout: WatchFanout, store: Store, rt: ResourceType) -> None:
        self.fanout = fanout
        self.store = store
        self.rt = rt
        self.prefix = rt.storage_prefix
        self.start: int | None = None
        self.last: int | None = None
        self.unindexed: Group = {}
        self.by_namespace: dict[str, Group] = {}
        self.by_name: dict[str, Group] = {}
        self.by_field: dict[str, dict[str, Group]] = {}
        self.count = 0
        self.dispatched = 0
        """Events handed to a watcher (a measure of the work, for tests)."""
        self._ready: asyncio.Future[None] | None = None
        self._watch: Watch | None = None
        self._task: asyncio.Task[None] | None = None
        self._idle: asyncio.TimerHandle | None = None

    async def _started(self) -> None:
        if self._ready is None:
            self._ready = asyncio.get_running_loop().create_future()
            try:
                revision = await self.store.current_revision()
                self._watch = self.store.watch(self.prefix, revision)
            except BaseException as exc:
                self.fanout._forget(self)
                self._ready.set_exception(exc)
                self._ready.exception()  # retrieved: every waiter re-raises it
                raise
            self.start = revision
            self._task = asyncio.create_task(self._run(self._watch), name=f"watch-dispatch {self.prefix}")
            self._ready.set_result(None)
        else:
            await asyncio.shield(self._ready)

    async def add(self, sub: Subscription) -> None:
        await self._started()
        assert self.start is not None
        if self._task is None or self._task.done():
            # Ended while this watcher waited for the start; the next one makes a new one.
            sub._private(self.store)
            return
        # A watcher from before what the dispatcher has handed out replays the
        # store up to there, then takes the dispatcher's events (not a private
        # store watch for good: a quiet field-selected watch could then never
        # bookmark past its own last event).
        newest = self.last if self.last is not None else self.start
        if sub.after < newest:
            sub._replay_from(self.store.watch(self.prefix, sub.after), newest)
        self._group(sub, create=True)[sub] = None
        sub._dispatcher = self
        self.count += 1
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None

    def _group(self, sub: Subscription, create: bool = False) -> Group:
        kind, value = sub.index
        if kind == "namespace":
            table = self.by_namespace
        elif kind == "name":
            table = self.by_name
        elif kind == "field":
            field, _, value = value.partition("=")
            table = self.by_field.setdefault(field, {}) if create else self.by_field.get(field, {})
        else:
            return self.unindexed
        group = table.get(value)
        if group is None:
            group = {}
            if create:
                table[value] = group
        return group

    def remove(self, sub: Subscription) -> None:
        group = self._group(sub)
        if sub in group:
            del group[sub]
            self.count -= 1
            if not group:
                self._prune(sub)
        if self.count == 0 and self._idle is None and self._task is not None and not self._task.done():
            self._idle = asyncio.get_running_loop().call_later(LINGER_SECONDS, self.stop)

    def _prune(self, sub: Subscription) -> None:
        kind, value = sub.index
        if kind == "namespace":
            self.by_namespace.pop(value, None)
        elif kind == "name":
            self.by_name.pop(value, None)
        elif kind == "field":
            field, _, value = value.partition("=")
            table = self.by_field.get(field)
            if table is not None:
                table.pop(value, None)
                if not table:
                    del self.by_field[field]

    def stop(self) -> None:
        """End the store watch once no watcher is left."""
        self._idle = None
        if self.count == 0:
            self.fanout._forget(self)
            if self._task is not None:
                self._task.cancel()

    async def _run(self, watch: Watch) -> None:
        error: BaseException | None = None
        try:
            async for event in watch:
                self.dispatch(event)
        except StoreError as exc:
            error = exc
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # a bug here must not leave watchers hanging
            log.exception("watch dispatch for %s failed", self.prefix)
            error = exc
        finally:
            self.fanout._forget(self)
            self._end_all(error)
            try:
                await watch.close()
            except Exception:
                log.debug("closing the store watch of %s", self.prefix, exc_info=True)

    def _end_all(self, error: BaseException | None) -> None:
        groups: list[Group] = [self.unindexed, *self.by_namespace.values(), *self.by_name.values()]
        for table in self.by_field.values():
            groups.extend(table.values())
        for group in groups:
            for sub in list(group):
                sub._stop(error)

    def targets(self, change: Change) -> list[Group]:
        """The groups of watchers that can match ``change``."""
        kv = change.event.kv
        rest = kv.key[len(self.prefix):]
        if self.rt.namespaced:
            namespace, _, name = rest.partition("/")
        else:
            namespace, name = "", rest
        groups = [self.unindexed] if self.unindexed else []
        group = self.by_namespace.get(namespace)
        if group:
            groups.append(group)
        group = self.by_name.get(name)
        if group:
            groups.append(group)
        for field, table in self.by_field.items():
            value = change.fields.get(field, "")
            group = table.get(value)
            if group:
                groups.append(group)
            if change.has_prev:
                old = change.prev_fields.get(field, "")
                if old != value and (group := table.get(old)):
                    groups.append(group)
            elif change.event.type is EventType.PUT and not change.is_create:
                # An update whose previous version is unknown: any watcher
                # may have had it, so ask them all (they know what they sent).
                groups.extend(g for v, g in table.items() if v != value)
        return groups

    def dispatch(self, event: WatchEvent) -> None:
        change = Change(event, self.rt, self.fanout)
        self.last = event.kv.mod_revision
        for group in self.targets(change):
            for sub in list(group):
                self.dispatched += 1
                sub._offer(change)

