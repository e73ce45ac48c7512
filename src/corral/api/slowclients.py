"""Slow clients get their connections closed (slowloris).

aiohttp bounds idle keep-alive connections but not a request whose headers
trickle in a byte at a time, so a few hundred such connections would hold
the server's sockets forever. Like Go's ``ReadHeaderTimeout`` (which the
Kubernetes API server sets), a connection has ``header_timeout`` seconds
from its TLS handshake, and from the first byte of each later request, to
deliver complete request headers; otherwise it is closed. The TLS handshake
itself gets the same bound. A request body that does not arrive within the
body timeout is answered 408 (api/ratelimit.py) and its connection closed
(:data:`CLOSE_KEY`).

:class:`GuardedSite` is aiohttp's ``TCPSite`` with each connection's
protocol wrapped in a :class:`SlowClientGuard`; :func:`slow_client_middleware`
tells the guard when a request has arrived (headers complete) and when it
is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)

DEFAULT_HEADER_TIMEOUT = 10.0
_UNREAD = object()
CLOSE_KEY = web.RequestKey("close-connection", bool)
"""Set on a request whose connection must not be reused (a body that timed out)."""


class SlowClientGuard(asyncio.Protocol):
    """Forwards everything to aiohttp's per-connection handler and notes when
    request headers fall due; :class:`_Sweeper` closes the connections whose
    headers are overdue. (A deadline is a float, not a timer: arming and
    disarming one per request costs nothing.)"""

    def __init__(self, inner: Any, header_timeout: float, loop: asyncio.AbstractEventLoop,
                 live: set[SlowClientGuard]) -> None:
        self.inner = inner
        self.header_timeout = header_timeout
        self._live: set[SlowClientGuard] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._loop = loop
        self._live = live
        self._transport: asyncio.BaseTransport | None = None
        self.peername: Any = None
        """The client's (host, port), read once per connection (the audit log
        wants it for every request)."""
        self._peercert: Any = _UNREAD
        self.due: float | None = None  # loop time by which headers must be complete
        self._busy = 0  # requests of this connection between headers and answer
        self.timed_out = False

    # -- what the middleware reports ------------------------------------------

    def request_started(self) -> None:
        self._busy += 1
        self.due = None

    def request_finished(self) -> None:
        self._busy = max(0, self._busy - 1)

    def peercert(self) -> Any:
        """The verified client certificate of this connection (None without
        one), asked of the TLS layer once: it is the same for every request
        of the connection, and the TLS layer decodes it anew each time."""
        if self._peercert is _UNREAD:
            transport = self._transport
            if transport is None:
                return None
            self._peercert = transport.get_extra_info("peercert")
        return self._peercert

    def close(self) -> None:
        """Close after what has been written is sent."""
        if self._transport is not None:
            self._transport.close()

    # -- the deadline ---------------------------------------------------------

    def _arm(self) -> None:
        if self.due is None:
            self.due = self._loop.time() + self.header_timeout

    def expire_if_due(self, now: float) -> None:
        if self.due is None or now < self.due or self._busy or self._transport is None:
            return
        self.due = None
        self.timed_out = True
        peer = self._transport.get_extra_info("peername")
        log.info("closing connection from %s: request headers not received within %gs", peer, self.header_timeout)
        self._transport.abort()  # type: ignore[attr-defined]

    # -- asyncio.Protocol, forwarded -----------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        try:
            self.peername = transport.get_extra_info("peername")
        except AttributeError:  # an SSL transport already closed under us
            self.peername = None
        self._live.add(self)
        self.inner.connection_made(transport)
        self._arm()  # the first request's headers are due now

    def data_received(self, data: bytes) -> None:
        if not self._busy:
            self._arm()  # bytes of the next request: its headers are due
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self.due = None
        self._transport = None
        self._live.discard(self)
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


async def _sweep(live: set[SlowClientGuard], interval: float) -> None:
    """Close overdue connections, ``interval`` apart (a quarter of the timeout,
    at most a second: a slow client is cut at most that much late)."""
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(interval)
        now = loop.time()
        for guard in list(live):
            guard.expire_if_due(now)


def guard_of(request: web.Request) -> SlowClientGuard | None:
    """The guard of the request's connection, if it came through a :class:`GuardedSite`."""
    transport = request.transport
    guard = transport.get_protocol() if transport is not None else None
    return guard if isinstance(guard, SlowClientGuard) else None


async def close_if_asked(request: web.Request, response: web.StreamResponse, guard: SlowClientGuard) -> None:
    """Send the answer now and close, if the request's body timed out
    (:data:`CLOSE_KEY`): aiohttp would otherwise keep reading ("lingering")
    the body that did not come for 10 s more."""
    if request.get(CLOSE_KEY):
        response.force_close()
        await response.prepare(request)
        await response.write_eof()
        guard.close()


@web.middleware
async def slow_client_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """The guard's part of a request, for a server without api/security.py's
    chain (which does the same in its own middleware)."""
    guard = guard_of(request)
    if guard is None:
        return await handler(request)
    guard.request_started()
    try:
        response = await handler(request)
        await close_if_asked(request, response, guard)
        return response
    finally:
        guard.request_finished()


class GuardedSite(web.BaseSite):
    """``web.TCPSite`` whose connections are wrapped in :class:`SlowClientGuard`."""

    __slots__ = ("_host", "_port", "_reuse_address", "_reuse_port", "header_timeout", "_live", "_sweeper")

    def __init__(self, runner: web.BaseRunner, host: str, port: int, *, ssl_context: ssl.SSLContext | None,
                 backlog: int = 1024, reuse_address: bool = True, reuse_port: bool = False,
                 header_timeout: float = DEFAULT_HEADER_TIMEOUT, shutdown_timeout: float = 60.0) -> None:
        if header_timeout <= 0:
            raise ValueError(f"header_timeout: must be positive, got {header_timeout!r}")
        super().__init__(runner, shutdown_timeout=shutdown_timeout, ssl_context=ssl_context, backlog=backlog)
        self._host, self._port, self._reuse_address = host, port, reuse_address
        self._reuse_port = reuse_port  # API workers share one port (api/workers.py)
        self.header_timeout = header_timeout
        self._live: set[SlowClientGuard] = set()
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://{self._host}:{self.port}"

    @property
    def port(self) -> int:
        if self._server is not None and self._server.sockets:  # type: ignore[union-attr]
            return int(self._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        return self._port

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None
        timeout, live = self.header_timeout, self._live

        def factory() -> SlowClientGuard:
            return SlowClientGuard(server(), timeout, loop, live)

        self._server = await loop.create_server(
            factory, self._host, self._port, ssl=self._ssl_context, backlog=self._backlog,
            reuse_address=self._reuse_address, reuse_port=self._reuse_port or None,
            ssl_handshake_timeout=timeout if self._ssl_context is not None else None,
        )
        self._sweeper = asyncio.create_task(_sweep(live, min(1.0, timeout / 4)), name="slow-client-sweeper")

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        await super().stop()
