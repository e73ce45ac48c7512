"""In-process watch fan-out for a single-writer store.

With one writer there is no need to poll the log (kine polls because several
processes may write). The writer hands each committed batch to a
:class:`WatchHub` on the event loop, which appends it to an :class:`EventRing`
of recent history and pushes it into every matching watcher's bounded queue.

A new watcher is registered *before* its history is replayed: it records the
hub's revision at that instant (``replay_to``); live events above it queue up
while history ``(after_revision, replay_to]`` is read from the ring or, when
the ring no longer reaches back that far, from the store's log. That ordering
is what makes "no gap, no duplicate" hold without a lock.
"""

from __future__ import annotations

import bisect
import collections
from collections.abc import AsyncIterator, Callable
from typing import Any

from corral.store.protocol import CompactedError, StoreError, WatchEvent

ReplaySource = Callable[[str, int, int], AsyncIterator[list[WatchEvent]]]
"""``(prefix, after, upto)`` → pages of events with after < revision <= upto."""


class EventRing:
    """The most recent events of every key, oldest first, bounded by count.

    ``floor`` is the revision below which the ring is incomplete: it holds
    every event with revision > floor (revisions have no holes within one
    process lifetime because failed operations never take a revision).
    """

    def __init__(self, capacity: int, floor: int) -> None:
        if capacity < 1:
            raise ValueError(f"ring capacity must be >= 1, got {capacity}")
        self._capacity = capacity
        self._events: collections.deque[WatchEvent] = collections.deque()
        self._revs: collections.deque[int] = collections.deque()
        self.floor = floor

    def extend(self, events: list[WatchEvent]) -> None:
        for event in events:
            self._events.append(event)
            self._revs.append(event.kv.mod_revision)
        while len(self._events) > self._capacity:
            self._events.popleft()
            self.floor = self._revs.popleft()

    def covers(self, after: int) -> bool:
        return after >= self.floor

    def between(self, prefix: str, after: int, upto: int) -> list[WatchEvent]:
        """Events with after < revision <= upto under ``prefix``; caller checks ``covers``."""
        start = bisect.bisect_right(self._revs, after)
        out: list[WatchEvent] = []
        for i in range(start, len(self._events)):
            event = self._events[i]
            if event.kv.mod_revision > upto:
                break
            if event.kv.key.startswith(prefix):
                out.append(event)
        return out


class StoreWatch:
    """One subscriber: replayed history first, then live events.

    The live queue is bounded by ``buffer`` events; overflowing it ends the
    watch with :class:`CompactedError` so the client re-lists instead of the
    server holding an unbounded backlog for a consumer that cannot keep up.
    """

    def __init__(
        self,
        hub: WatchHub,
        prefix: str,
        after: int,
        replay_to: int,
        buffer: int,
        replay: Callable[[], AsyncIterator[list[WatchEvent]]],
    ) -> None:
        self._hub = hub
        self.prefix = prefix
        self._after = after
        # Live events at or below this were (or will be) served by replay or
        # by the list the client made at that revision.
        self._live_floor = max(after, replay_to)
        self._buffer = buffer
        self._replay_factory: Callable[[], AsyncIterator[list[WatchEvent]]] | None = replay
        self._replay: AsyncIterator[list[WatchEvent]] | None = None
        self._ready: collections.deque[WatchEvent] = collections.deque()
        self._live: collections.deque[WatchEvent] = collections.deque()
        self._waiter: Any = None
        self._error: StoreError | None = None
        self._closed = False
        self._replaying = False
        self._last_delivered = after

    # -- called by the hub, on the loop -------------------------------------

    def _push(self, events: list[WatchEvent]) -> None:
        if self._closed or self._error is not None:
            return
        floor = self._live_floor
        if events[0].kv.mod_revision <= floor:
            events = [e for e in events if e.kv.mod_revision > floor]
            if not events:
                return
        self._live.extend(events)
        if len(self._live) > self._buffer:
            self._fail(
                CompactedError(self._last_delivered, self._live[0].kv.mod_revision),
            )
            return
        self._wake()

    def _fail(self, error: StoreError) -> None:
        self._error = error
        self._live.clear()
        self._ready.clear()
        self._hub._unsubscribe(self)
        self._wake()

    def _end(self) -> None:
        self._closed = True
        self._live.clear()
        self._ready.clear()
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- consumer side ------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[WatchEvent]:
        return self

    async def __anext__(self) -> WatchEvent:
        while True:
            if self._closed:
                await self._drop_replay()
                raise StopAsyncIteration
            if self._error is not None:
                raise self._error
            if self._ready:
                event = self._ready.popleft()
                self._last_delivered = event.kv.mod_revision
                return event
            if self._replay_factory is not None:
                self._replay = self._replay_factory()
                self._replay_factory = None
            if self._replay is not None:
                await self._next_replay_page()
                continue
            if self._live:
                self._ready, self._live = self._live, self._ready
                continue
            self._waiter = self._hub.loop_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    async def _next_replay_page(self) -> None:
        assert self._replay is not None
        self._replaying = True
        try:
            page = await self._replay.__anext__()
        except StopAsyncIteration:
            self._replay = None
            return
        except StoreError as exc:
            self._replay = None
            if not self._closed:
                self._fail(exc)
            return
        finally:
            self._replaying = False
        if not self._closed and self._error is None:
            self._ready.extend(page)

    async def close(self) -> None:
        """End iteration; idempotent."""
        if self._closed:
            return
        self._hub._unsubscribe(self)
        self._end()
        await self._drop_replay()

    async def _drop_replay(self) -> None:
        # A replay page being awaited by the iterating task cannot be closed
        # from here; that task drops it when it sees the watch closed.
        if self._replay is None or self._replaying:
            return
        replay, self._replay = self._replay, None
        aclose = getattr(replay, "aclose", None)
        if aclose is not None:
            await aclose()


class WatchHub:
    """Routes committed events to watchers, grouped by prefix so that a
    thousand watchers of one prefix cost one prefix test per event."""

    def __init__(self, revision: int, buffer: int, loop_future: Callable[[], Any]) -> None:
        if buffer < 1:
            raise ValueError(f"watch buffer must be >= 1, got {buffer}")
        self.revision = revision
        self._buffer = buffer
        self._by_prefix: dict[str, dict[StoreWatch, None]] = {}
        self.loop_future = loop_future

    @property
    def watcher_count(self) -> int:
        return sum(len(group) for group in self._by_prefix.values())

    def subscribe(
        self,
        prefix: str,
        after: int,
        replay: ReplaySource,
        check: Callable[[int], None],
    ) -> StoreWatch:
        """Register now (synchronously), replay lazily on first iteration.

        ``check(after)`` runs at the start of replay and raises if the
        requested history is gone."""
        upto = self.revision

        async def history() -> AsyncIterator[list[WatchEvent]]:
            check(after)
            if after >= upto:
                return
            async for page in replay(prefix, after, upto):
                yield page

        watch = StoreWatch(self, prefix, after, upto, self._buffer, history)
        self._by_prefix.setdefault(prefix, {})[watch] = None
        return watch

    def _unsubscribe(self, watch: StoreWatch) -> None:
        group = self._by_prefix.get(watch.prefix)
        if group is not None:
            group.pop(watch, None)
            if not group:
                del self._by_prefix[watch.prefix]

    def publish(self, events: list[WatchEvent]) -> None:
        """Deliver one committed batch (in revision order) to every watcher."""
        if not events:
            return
        self.revision = events[-1].kv.mod_revision
        for prefix, group in list(self._by_prefix.items()):
            if prefix:
                matching = [e for e in events if e.kv.key.startswith(prefix)]
                if not matching:
                    continue
            else:
                matching = events
            for watch in list(group):
                watch._push(matching)

    def close_all(self) -> None:
        groups, self._by_prefix = self._by_prefix, {}
        for group in groups.values():
            for watch in group:
                watch._end()
