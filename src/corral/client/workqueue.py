"""A work queue with client-go's semantics, for level-triggered controllers.

* A key waiting in the queue is not added twice (the dirty set).
* A key being processed is not handed to a second worker; if it is added
  meanwhile, it is queued again when the first worker calls ``done``.
* ``add_after`` delays a key; ``add_rate_limited`` delays it by a per-key
  exponential backoff that ``forget`` resets.
* The queue is bounded: beyond ``max_size`` keys, adds are dropped, logged
  and counted rather than growing memory without limit.

Time comes from the injected clock, so controller tests drive delays with a
FakeClock and never sleep for real.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections import deque

from corral.client.backoff import exponential, jittered
from corral.clock import Clock, RealClock

log = logging.getLogger(__name__)


class QueueShutDown(Exception):
    """The queue was shut down; the worker should exit."""


class WorkQueue:
    def __init__(
        self,
        *,
        clock: Clock | None = None,
        base_delay: float = 0.005,
        max_delay: float = 300.0,
        max_size: int = 100_000,
        name: str = "",
    ) -> None:
        if base_delay <= 0 or max_delay < base_delay:
            raise ValueError(f"base_delay/max_delay: need 0 < base <= max, got {base_delay}, {max_delay}")
        if max_size < 1:
            raise ValueError(f"max_size: must be positive, got {max_size}")
        self.name = name
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.max_size = max_size
        self.dropped = 0  # adds refused because the queue was full
        self._clock = clock or RealClock()
        self._queue: deque[str] = deque()
        self._dirty: set[str] = set()
        self._processing: set[str] = set()
        self._waiting: dict[str, float] = {}  # key -> ready time (monotonic)
        self._heap: list[tuple[float, int, str]] = []  # may hold stale entries
        self._seq = itertools.count()
        self._failures: dict[str, int] = {}
        self._getters: deque[asyncio.Future[None]] = deque()
        self._shutdown = False

    # -- adding ------------------------------------------------------------

    def add(self, key: str) -> None:
        if self._shutdown or key in self._dirty:
            return
        if len(self._dirty) >= self.max_size:
            self._drop(key)
            return
        self._dirty.add(key)
        if key in self._processing:
            return  # re-queued by done()
        self._queue.append(key)
        self._wake_one()

    def add_after(self, key: str, delay: float) -> None:
        if self._shutdown:
            return
        if delay <= 0:
            self.add(key)
            return
        ready = self._clock.monotonic() + delay
        current = self._waiting.get(key)
        if current is not None and current <= ready:
            return  # already due no later than that
        if current is None and len(self._waiting) >= self.max_size:
            self._drop(key)
            return
        self._waiting[key] = ready
        heapq.heappush(self._heap, (ready, next(self._seq), key))
        self._wake_all()  # getters may be sleeping towards a later deadline

    def add_rate_limited(self, key: str) -> None:
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        delay = exponential(self.base_delay, n, self.max_delay)
        self.add_after(key, min(self.max_delay, jittered(delay, 0.1)))

    def forget(self, key: str) -> None:
        self._failures.pop(key, None)

    def num_requeues(self, key: str) -> int:
        return self._failures.get(key, 0)

    # -- working -----------------------------------------------------------

    async def get(self) -> str:
        """The next key to work on; the caller owns it until ``done(key)``."""
        while True:
            if self._shutdown:
                raise QueueShutDown(self.name)
            self._promote_due()
            if self._queue:
                key = self._queue.popleft()
                self._dirty.discard(key)
                self._processing.add(key)
                return key
            await self._wait()

    def done(self, key: str) -> None:
        self._processing.discard(key)
        if key in self._dirty and not self._shutdown:
            self._queue.append(key)
            self._wake_one()

    def shutdown(self) -> None:
        self._shutdown = True
        self._wake_all()

    @property
    def shutting_down(self) -> bool:
        return self._shutdown

    def __len__(self) -> int:
        """Keys ready to be handed out (delayed ones once they are due)."""
        self._promote_due()
        return len(self._queue)

    @property
    def waiting(self) -> int:
        """Keys delayed by add_after / add_rate_limited and not yet due."""
        return len(self._waiting)

    # -- internals -----------------------------------------------------------

    def _promote_due(self) -> None:
        now = self._clock.monotonic()
        while self._heap and self._heap[0][0] <= now:
            ready, _, key = heapq.heappop(self._heap)
            if self._waiting.get(key) == ready:
                del self._waiting[key]
                self.add(key)

    def _next_deadline(self) -> float | None:
        while self._heap and self._waiting.get(self._heap[0][2]) != self._heap[0][0]:
            heapq.heappop(self._heap)  # superseded by an earlier add_after
        return self._heap[0][0] if self._heap else None

    async def _wait(self) -> None:
        """Until an add wakes us or the earliest delayed key falls due."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._getters.append(fut)
        deadline = self._next_deadline()
        timer = None
        try:
            if deadline is None:
                await fut
                return
            timer = asyncio.ensure_future(self._clock.sleep(deadline - self._clock.monotonic()))
            await asyncio.wait({fut, timer}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            # A wake-up meant for us must not be lost with us.
            if fut.done() and not fut.cancelled():
                self._wake_one()
            raise
        finally:
            if timer is not None:
                timer.cancel()
            if not fut.done():
                fut.cancel()
                # Still queued (a wake-up pops its future first); a failed
                # remove's ValueError formats repr(future), which was costly.
                self._getters.remove(fut)

    def _wake_one(self) -> None:
        while self._getters:
            fut = self._getters.popleft()
            if not fut.done():
                fut.set_result(None)
                return

    def _wake_all(self) -> None:
        while self._getters:
            fut = self._getters.popleft()
            if not fut.done():
                fut.set_result(None)

    def _drop(self, key: str) -> None:
        self.dropped += 1
        if self.dropped == 1 or self.dropped % 1000 == 0:
            log.warning(
                "work queue %s full (%d keys): dropped %r (%d dropped so far)",
                self.name or "?",
                self.max_size,
                key,
                self.dropped,
            )
