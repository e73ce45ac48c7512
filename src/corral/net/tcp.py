"""TCP forwarding for the userspace proxy, on asyncio protocols.

Bytes go from one transport's ``data_received`` straight to the other's
``write``, with flow control tied across (a peer that cannot keep up pauses
reading on the other side), and half-closes passed through, so the proxy
adds one copy and no task per connection. Streams and a task per direction
cost about half the new-connection rate (bench/proxy.py).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from corral.net.balancer import Backend, Balancer
from corral.net.servicetable import ListenKey

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 3.0
CONNECT_ATTEMPTS = 3


class _Side(asyncio.Protocol):
    """One end of a forwarded connection; ``peer`` is the other end."""

    def __init__(self) -> None:
        self.transport: Any = None
        self.peer: _Side | None = None
        self.eof = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.write(data)

    def eof_received(self) -> bool:
        self.eof = True
        peer = self.peer
        if peer is None or peer.transport is None or peer.eof:
            return False  # both directions done: let the transport close
        if peer.transport.can_write_eof():
            peer.transport.write_eof()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.close()

    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()


class _Accepted(_Side):
    def __init__(self, listener: TcpListener) -> None:
        super().__init__()
        self.listener = listener
        self.backend: Backend | None = None
        self.early: list[bytes] = []
        """Bytes that arrived before the backend connection (an event loop
        may deliver some despite pause_reading)."""

    def data_received(self, data: bytes) -> None:
        if self.peer is None:
            self.early.append(data)
        else:
            super().data_received(data)

    def eof_received(self) -> bool:
        if self.peer is None:
            self.eof = True  # passed on once the backend is connected
            return True
        return super().eof_received()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        transport.pause_reading()  # type: ignore[attr-defined]  # until the backend answers
        asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        peer = self.transport.get_extra_info("peername")
        client_ip = str(peer[0]) if peer else ""
        tried: list[Backend] = []
        loop = asyncio.get_running_loop()
        for _ in range(CONNECT_ATTEMPTS):
            backend = self.listener.balancer.pick(client_ip, tried)
            if backend is None:
                break  # no ready endpoint: refuse by closing, as a REJECT would
            upstream = _Side()
            upstream.peer = self
            try:
                await asyncio.wait_for(
                    loop.create_connection(lambda up=upstream: up, backend.ip, backend.port), CONNECT_TIMEOUT)
            except (TimeoutError, OSError):
                tried.append(backend)
                continue
            if self.transport.is_closing():
                upstream.transport.close()
                return
            self.backend = backend
            backend.active += 1
            backend.total += 1
            self.peer = upstream
            for data in self.early:
                upstream.transport.write(data)
            self.early.clear()
            if self.eof and upstream.transport.can_write_eof():
                upstream.transport.write_eof()
            self.transport.resume_reading()
            return
        self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self.backend is not None:
            self.backend.active -= 1
            self.backend = None


class TcpListener:
    """One listening socket in front of one service port's balancer."""

    def __init__(self, key: ListenKey, balancer: Balancer) -> None:
        self.key = key
        self.balancer = balancer
        self.server: asyncio.Server | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: _Accepted(self), self.key.ip, self.key.port,
                                               reuse_address=True, backlog=1024)

    def close(self) -> None:
        """Stop accepting; open connections are drained, not cut."""
        if self.server is not None:
            self.server.close()
