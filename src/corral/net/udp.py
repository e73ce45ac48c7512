"""UDP forwarding for the userspace proxy.

UDP has no connections, so a "flow" is a client address: its first datagram
picks a backend, and an upstream socket of its own carries that client's
datagrams there and the replies back, until it has been idle for
FLOW_IDLE seconds. New flows never go to a removed or unready backend;
live flows keep theirs until idle (drained).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from corral.net.balancer import Backend, Balancer
from corral.net.servicetable import ListenKey

log = logging.getLogger(__name__)

FLOW_IDLE = 30.0
MAX_FLOWS = 4096


class _Upstream(asyncio.DatagramProtocol):
    def __init__(self, listener: UdpListener, client: tuple[str, int]) -> None:
        self.listener = listener
        self.client = client
        self.transport: asyncio.DatagramTransport | None = None
        self.last = time.monotonic()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.last = time.monotonic()
        if self.listener.transport is not None:
            self.listener.transport.sendto(data, self.client)

    def error_received(self, exc: Exception) -> None:
        log.debug("udp upstream for %s: %s", self.client, exc)


class UdpListener(asyncio.DatagramProtocol):
    def __init__(self, key: ListenKey, balancer: Balancer) -> None:
        self.key = key
        self.balancer = balancer
        self.transport: asyncio.DatagramTransport | None = None
        self.flows: dict[tuple[str, int], tuple[_Upstream, Backend]] = {}
        self._pending: dict[tuple[str, int], list[bytes]] = {}
        self._reaper: asyncio.Task[Any] | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: self, local_addr=(self.key.ip, self.key.port))
        self._reaper = asyncio.create_task(self._reap(), name=f"udp reaper {self.key.port}")

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        if self._reaper is not None:
            self._reaper.cancel()
        for upstream, backend in self.flows.values():
            if upstream.transport is not None:
                upstream.transport.close()
            backend.active -= 1
        self.flows.clear()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        flow = self.flows.get(addr)
        if flow is not None and flow[0].transport is not None:
            flow[0].last = time.monotonic()
            flow[0].transport.sendto(data)
            return
        if addr in self._pending:
            self._pending[addr].append(data)
            return
        if len(self.flows) >= MAX_FLOWS:
            return
        backend = self.balancer.pick(addr[0])
        if backend is None:
            return
        self._pending[addr] = [data]
        asyncio.get_running_loop().create_task(self._open(addr, backend))

    async def _open(self, addr: tuple[str, int], backend: Backend) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, upstream = await loop.create_datagram_endpoint(
                lambda: _Upstream(self, addr), remote_addr=backend.address)
        except OSError as exc:
            log.info("udp %s: cannot reach %s: %s", self.key.port, backend.address, exc)
            self._pending.pop(addr, None)
            return
        backend.active += 1
        backend.total += 1
        self.flows[addr] = (upstream, backend)
        assert upstream.transport is not None
        for data in self._pending.pop(addr, []):
            upstream.transport.sendto(data)

    async def _reap(self) -> None:
        while True:
            await asyncio.sleep(FLOW_IDLE / 3)
            now = time.monotonic()
            for addr, (upstream, backend) in list(self.flows.items()):
                if now - upstream.last > FLOW_IDLE:
                    del self.flows[addr]
                    if upstream.transport is not None:
                        upstream.transport.close()
                    backend.active -= 1
