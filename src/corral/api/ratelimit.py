"""Fair shares of the server for every client, in the spirit of Kubernetes'
API Priority and Fairness.

Each user gets a bounded number of requests in flight and a short queue;
past both, a request is refused at once with 429 and ``Retry-After`` (what
APF does when a queue is full), so one noisy client slows only itself.
Long-running requests (watches, logs, exec) do not hold a slot but are
counted separately, per user and in total, so thousands of idle watches
cannot starve the server of memory. ``system:masters`` is exempt, as APF
exempts it, so the control plane and the administrator are never queued.

Slow clients are bounded too: request headers must arrive within
``header_timeout`` (the connection is closed otherwise, api/slowclients.py),
a request body within ``body_timeout`` (408, and the connection is closed) and a short request must finish within
``request_timeout`` (504, as Kubernetes answers a timed-out handler).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from corral.api.auth import User
from corral.api.errors import ApiError, TooManyRequests

EXEMPT_GROUP = "system:masters"
LONG_RUNNING_SUBRESOURCES = frozenset({"log", "exec", "attach", "portforward", "proxy"})


class RequestTimeout(ApiError):
    code = 408
    reason = "Timeout"


@dataclass
class LimitSettings:
    max_in_flight_per_user: int = 64
    queue_per_user: int = 64
    queue_wait: float = 2.0
    max_in_flight_total: int = 800
    max_watches_per_user: int = 2000
    max_watches_total: int = 20000
    body_timeout: float = 30.0
    request_timeout: float = 60.0
    header_timeout: float = 10.0
    """Seconds a connection has to deliver a request's headers (api/slowclients.py)."""


class _Lane:
    """One user's slots and queue. A lane lives while its user has requests
    in flight, so most requests of a client with one at a time (a node)
    make a new one: its Event is made only once a request has to wait."""

    __slots__ = ("in_flight", "waiting", "freed")

    def __init__(self) -> None:
        self.in_flight = 0
        self.waiting = 0
        self.freed: asyncio.Event | None = None


def is_long_running(method: str, path: str, query_watch: str | None) -> bool:
    if method == "GET" and query_watch in ("1", "true", "True"):
        return True
    parts = path.rstrip("/").split("/")
    return "watch" in parts[:5] or (len(parts) > 1 and parts[-1] in LONG_RUNNING_SUBRESOURCES)


class RequestLimiter:
    def __init__(self, settings: LimitSettings | None = None) -> None:
        self.settings = settings or LimitSettings()
        self._lanes: dict[str, _Lane] = {}
        self._watches: dict[str, int] = {}
        self.in_flight_total = 0
        self.watches_total = 0
        self.rejected = 0

    def _refuse(self, what: str) -> TooManyRequests:
        self.rejected += 1
        return TooManyRequests(f"Too many requests, please try again later. ({what})", retry_after=1)

    @contextlib.asynccontextmanager
    async def slot(self, user: User | None, long_running: bool) -> AsyncIterator[None]:
        if user is None or EXEMPT_GROUP in user.groups:
            yield
            return
        if long_running:
            async with self._watch(user.name):
                yield
            return
        lane = await self.acquire(user.name)
        try:
            yield
        finally:
            self.release(user.name, lane)

    async def acquire(self, name: str) -> _Lane:
        """A slot of ``name``'s lane for a short request, waiting in its queue
        if need be; :meth:`release` gives it back. (What ``slot`` does, as two
        calls: the server's middleware pairs them in its own ``finally``
        rather than build a context manager per request.)"""
        s = self.settings
        lane = self._lanes.get(name)
        if lane is None:
            lane = self._lanes[name] = _Lane()
        if lane.in_flight >= s.max_in_flight_per_user or self.in_flight_total >= s.max_in_flight_total:
            try:
                await self._wait(lane)
            except TooManyRequests:
                if lane.in_flight == 0 and lane.waiting == 0:
                    self._lanes.pop(name, None)
                raise
        lane.in_flight += 1
        self.in_flight_total += 1
        return lane

    def release(self, name: str, lane: _Lane) -> None:
        lane.in_flight -= 1
        self.in_flight_total -= 1
        if lane.waiting and lane.freed is not None:
            lane.freed.set()
        elif lane.in_flight == 0:
            self._lanes.pop(name, None)

    async def _wait(self, lane: _Lane) -> None:
        s = self.settings
        if lane.waiting >= s.queue_per_user:
            raise self._refuse("the client's queue is full")
        lane.waiting += 1
        freed = lane.freed
        if freed is None:
            freed = lane.freed = asyncio.Event()
        try:
            async with asyncio.timeout(s.queue_wait):
                while lane.in_flight >= s.max_in_flight_per_user or self.in_flight_total >= s.max_in_flight_total:
                    freed.clear()
                    await freed.wait()
        except TimeoutError:
            raise self._refuse("timed out waiting in the client's queue") from None
        finally:
            lane.waiting -= 1

    @contextlib.asynccontextmanager
    async def _watch(self, name: str) -> AsyncIterator[None]:
        s = self.settings
        if self._watches.get(name, 0) >= s.max_watches_per_user or self.watches_total >= s.max_watches_total:
            raise self._refuse("too many long-running requests")
        self._watches[name] = self._watches.get(name, 0) + 1
        self.watches_total += 1
        try:
            yield
        finally:
            self.watches_total -= 1
            left = self._watches[name] - 1
            if left:
                self._watches[name] = left
            else:
                del self._watches[name]


async def read_body_within(request: object, seconds: float) -> None:
    """Read (and let aiohttp cache) a request body, or 408 if it dribbles in."""
    try:
        async with asyncio.timeout(seconds):
            await request.read()  # type: ignore[attr-defined]
    except TimeoutError:
        raise RequestTimeout(f"the request body did not arrive within {seconds:g}s") from None
