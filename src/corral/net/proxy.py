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
from corral.net.balancer import Balancer
from corral.net.servicetable import ListenKey, PortPlan, plan
from corral.net.tcp import TcpListener
from corral.net.udp import UdpListener

log = logging.getLogger(__name__)

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
