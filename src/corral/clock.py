"""Injectable time.

Every component takes a :class:`Clock` so the simulator and the controller
tests can run hours of cluster life in milliseconds with :class:`FakeClock`.
Wall time (``now``) is for timestamps written into objects; monotonic time is
for deadlines and backoff, which must not jump when the wall clock does.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """Current wall time, timezone-aware UTC."""

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin; never goes backwards."""

    async def sleep(self, seconds: float) -> None: ...


class RealClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class FakeClock:
    """Time moves only when a test calls :meth:`advance`; sleepers wake in
    deadline order as it passes them."""

    def __init__(self, start: datetime | None = None) -> None:
        self._wall0 = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._elapsed = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> datetime:
        return self._wall0 + timedelta(seconds=self._elapsed)

    def monotonic(self) -> float:
        return self._elapsed

    def sleep(self, seconds: float) -> Awaitable[None]:
        """The deadline is taken when this is called, not when the awaiting
        task first runs: a caller that wraps the sleep in a task (a timer
        raced against a wake-up) would otherwise lose any time advanced
        before that task's first step, and wake that much late."""
        if seconds <= 0:
            return asyncio.sleep(0)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._elapsed + seconds, next(self._seq), fut))
        return fut

    async def advance(self, seconds: float) -> None:
        """Move time forward, waking each sleeper at its own deadline and
        letting woken tasks run before time moves further."""
        target = self._elapsed + seconds
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, fut = heapq.heappop(self._sleepers)
            self._elapsed = max(self._elapsed, deadline)
            if not fut.done():
                fut.set_result(None)
            for _ in range(5):
                await asyncio.sleep(0)
        self._elapsed = target
        for _ in range(5):
            await asyncio.sleep(0)

    @property
    def sleepers(self) -> int:
        return sum(1 for _, _, f in self._sleepers if not f.done())


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 with second precision and a Z, as Kubernetes writes them."""
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    # Formatting fields directly is several times faster than strftime, and
    # every write stamps at least one time.
    return (f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
            f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}Z")


def format_microtime(moment: datetime) -> str:
    """Kubernetes MicroTime (leases' renewTime, Events' eventTime):
    ``2026-01-01T00:00:00.000000Z``."""
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return (f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T{moment.hour:02d}:"
            f"{moment.minute:02d}:{moment.second:02d}.{moment.microsecond:06d}Z")


def parse_timestamp(text: str) -> datetime:
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    return datetime.fromisoformat(text)
