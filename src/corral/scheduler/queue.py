"""The scheduling queue: pending pods by priority, then age, with backoff.

The active heap orders by (-priority, creation time, arrival): a service
pod jumps ahead of batch pods, and among equals the oldest goes first. A pod
that did not fit waits 1 s, then 2, 4, 8, capped at 10 s, before it is tried
again; a change in the cluster that could make it fit (a node added or
changed, a pod deleted) moves every waiting pod forward at once. Keys are
deduplicated, so a pod is never in the queue twice.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools

from corral.clock import Clock, RealClock


class SchedulingQueue:
    def __init__(
        self,
        *,
        clock: Clock | None = None,
        initial_backoff: float = 1.0,
        max_backoff: float = 10.0,
        max_size: int = 1_000_000,
    ) -> None:
        self.clock: Clock = clock or RealClock()
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.max_size = max_size
        self._heap: list[tuple[int, str, int, str]] = []
        self._queued: dict[str, tuple[int, str]] = {}  # key -> (priority, created) while active
        self._order: dict[str, tuple[int, str]] = {}  # last known ordering of every known key
        self._backoff: dict[str, float] = {}  # key -> monotonic time it may run again
        self._attempts: dict[str, int] = {}
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        self._closed = False

    def __len__(self) -> int:
        return len(self._queued) + len(self._backoff)

    def backoff_for(self, attempts: int) -> float:
        return min(self.max_backoff, self.initial_backoff * 2 ** max(0, attempts - 1))

    def add(self, key: str, priority: int = 0, created: str = "") -> None:
        """A new or changed pod: schedule it when its backoff (if any) ends."""
        self._order[key] = (priority, created)
        if key in self._queued or key in self._backoff or len(self) >= self.max_size:
            return
        self._push(key)

    def _push(self, key: str) -> None:
        priority, created = self._order.get(key, (0, ""))
        self._queued[key] = (priority, created)
        heapq.heappush(self._heap, (-priority, created, next(self._seq), key))
        self._wake.set()

    def unschedulable(self, key: str) -> float:
        """The pod did not fit; returns the backoff it now waits."""
        attempts = self._attempts.get(key, 0) + 1
        self._attempts[key] = attempts
        delay = self.backoff_for(attempts)
        self._queued.pop(key, None)
        self._backoff[key] = self.clock.monotonic() + delay
        self._wake.set()
        return delay

    def requeue(self, key: str) -> None:
        """Try again soon without counting a failed attempt (e.g. waiting for
        preemption victims to go)."""
        self._queued.pop(key, None)
        self._backoff[key] = self.clock.monotonic() + self.initial_backoff
        self._wake.set()

    def move_all(self) -> int:
        """The cluster changed: retry every waiting pod now."""
        moved = list(self._backoff)
        self._backoff.clear()
        for key in moved:
            if key not in self._queued:
                self._push(key)
        return len(moved)

    def remove(self, key: str) -> None:
        """The pod is bound or gone: forget it and its attempts."""
        self._queued.pop(key, None)
        self._backoff.pop(key, None)
        self._attempts.pop(key, None)
        self._order.pop(key, None)

    def attempts(self, key: str) -> int:
        return self._attempts.get(key, 0)

    def close(self) -> None:
        self._closed = True
        self._wake.set()

    def _promote_due(self) -> float | None:
        now = self.clock.monotonic()
        due = [k for k, t in self._backoff.items() if t <= now]
        for key in due:
            del self._backoff[key]
            self._push(key)
        return min(self._backoff.values(), default=None)

    def _take(self, limit: int) -> list[str]:
        out: list[str] = []
        while self._heap and len(out) < limit:
            neg_prio, created, _, key = heapq.heappop(self._heap)
            if self._queued.get(key) == (-neg_prio, created):
                del self._queued[key]
                out.append(key)
        return out

    async def pop_many(self, limit: int) -> list[str]:
        """Up to ``limit`` pods, best first; waits for at least one; [] once closed."""
        while not self._closed:
            next_due = self._promote_due()
            taken = self._take(limit)
            if taken:
                return taken
            self._wake.clear()
            waiter = asyncio.ensure_future(self._wake.wait())
            timer = None
            if next_due is not None:
                timer = asyncio.ensure_future(self.clock.sleep(next_due - self.clock.monotonic()))
            try:
                await asyncio.wait([t for t in (waiter, timer) if t], return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (waiter, timer):
                    if task is not None and not task.done():
                        task.cancel()
        return []

    async def pop(self) -> str | None:
        """The next pod to try; None once closed."""
        got = await self.pop_many(1)
        return got[0] if got else None
