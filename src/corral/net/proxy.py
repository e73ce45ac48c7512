"""The userspace service proxy every agent runs.

For each Service port it listens on the cluster IP (the default service
range is 127.43.0.0/16, and all of 127/8 is loopback on Linux, so binding
needs no privileges and no packet rewriting) and on the node's address at
the nodePort, and forwards each new connection to a ready endpoint chosen by
:class:`~corral.net.balancer.Balancer`. The table follows Services and
EndpointSlices through informers; an endpoint that turns unready or goes
away gets no new connections, while connections already open to it are left
to finish (drained), as in kube-proxy.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from corral.client.api import ApiClient
from corral.client.informer import Informer
from corral.client.resources import ENDPOINTSLICES, SERVICES
from corral.clock import Clock, RealClock
from corral.net.balancer import Backend, Balancer
from corral.net.servicetable import ListenKey, PortPlan, plan
from corral.net.udp import UdpListener

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 3.0
CONNECT_ATTEMPTS = 3
CHUNK = 256 * 1024


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            data = await reader.read(CHUNK)
            if not data:
                break
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.transport.abort()


class TcpListener:
    """One listening socket in front of one service port's balancer."""

    def __init__(self, key: ListenKey, balancer: Balancer) -> None:
        self.key = key
        self.balancer = balancer
        self.server: asyncio.Server | None = None
        self.connections: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._accept, self.key.ip, self.key.port,
                                                 reuse_address=True, backlog=1024)

    def close(self) -> None:
        """Stop accepting; open connections are drained, not cut."""
        if self.server is not None:
            self.server.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.connections.add(task)
        try:
            await self._serve(reader, writer)
        finally:
            self.connections.discard(task)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        client_ip = str(peer[0]) if peer else ""
        tried: list[Backend] = []
        for _ in range(CONNECT_ATTEMPTS):
            backend = self.balancer.pick(client_ip, tried)
            if backend is None:
                return  # no ready endpoint: refuse by closing, as a REJECT would
            try:
                up_reader, up_writer = await asyncio.wait_for(
                    asyncio.open_connection(backend.ip, backend.port), CONNECT_TIMEOUT)
            except (TimeoutError, OSError):
                tried.append(backend)
                continue
            backend.active += 1
            backend.total += 1
            try:
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            finally:
                backend.active -= 1
                up_writer.close()
            return
        log.info("proxy %s:%d: no endpoint accepted a connection", self.key.ip, self.key.port)


class ServiceProxy:
    def __init__(self, client: ApiClient, *, node_addresses: list[str], algorithm: str = "round-robin",
                 clock: Clock | None = None) -> None:
        self.client = client
        self.node_addresses = list(node_addresses)
        self.algorithm = algorithm
        self.clock = clock or RealClock()
        self.services = Informer(client, SERVICES, clock=self.clock)
        self.slices = Informer(client, ENDPOINTSLICES, clock=self.clock)
        self.balancers: dict[str, Balancer] = {}
        self.listeners: dict[ListenKey, TcpListener | UdpListener] = {}
        self._dirty = asyncio.Event()
        for informer in (self.services, self.slices):
            informer.add_handler(on_add=self._changed, on_update=self._changed, on_delete=self._changed)

    def _changed(self, *_: Any) -> None:
        self._dirty.set()

    async def run(self) -> None:
        tasks = [asyncio.create_task(self.services.run(), name="proxy services"),
                 asyncio.create_task(self.slices.run(), name="proxy slices")]
        try:
            await self.services.wait_synced()
            await self.slices.wait_synced()
            while True:
                self._dirty.clear()
                failed = await self.sync()
                if failed:
                    # a port held by someone else: try again later, not in a hot loop
                    try:
                        await asyncio.wait_for(self._dirty.wait(), 5.0)
                    except TimeoutError:
                        pass
                else:
                    await self._dirty.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.close()

    def close(self) -> None:
        for listener in self.listeners.values():
            listener.close()
        self.listeners.clear()

    async def sync(self) -> int:
        """Bring listeners and backends in line with the caches; returns how
        many listeners could not be opened."""
        plans = plan(self.services.cache.list(), self.slices.cache.list(), self.node_addresses)
        wanted: dict[ListenKey, PortPlan] = {k: p for p in plans for k in p.listen}
        for ident in self.balancers.keys() - {p.ident for p in plans}:
            del self.balancers[ident]
        for p in plans:
            balancer = self.balancers.get(p.ident)
            if balancer is None:
                balancer = self.balancers[p.ident] = Balancer(self.algorithm, now=time.monotonic)
            balancer.set_backends(p.backends)
            balancer.set_affinity(p.affinity_seconds)
        for key in list(self.listeners):
            listener = self.listeners[key]
            p = wanted.get(key)
            if p is None or listener.balancer is not self.balancers[p.ident]:
                listener.close()
                del self.listeners[key]
        failed = 0
        for key, p in wanted.items():
            if key in self.listeners:
                continue
            listener: TcpListener | UdpListener
            balancer = self.balancers[p.ident]
            listener = TcpListener(key, balancer) if key.protocol == "TCP" else UdpListener(key, balancer)
            try:
                await listener.start()
            except OSError as exc:
                log.warning("proxy: cannot listen on %s %s:%d for %s: %s",
                            key.protocol, key.ip, key.port, p.service, exc)
                failed += 1
                continue
            self.listeners[key] = listener
        return failed
