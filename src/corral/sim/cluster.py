"""Many hollow nodes in one process.

All nodes share one HTTP connection pool (one aiohttp session), and one
watch on bound pods (``spec.nodeName!=``) whose events are dispatched to the
node named in ``spec.nodeName``. That is a deliberate departure from one
watch per node: the API server matches every event against every watcher's
field selector, so 5,000 node watches would cost 5,000 selector checks per
pod event in the server, and would measure that rather than scheduling. The
dispatcher stays faithful: a node receives exactly the events its own
``spec.nodeName=<name>`` watch would (a re-list after 410 re-delivers
everything, as it would per node), and each node still owns its Node, its
Lease (renewed every ``lease_interval`` seconds, spread evenly over the
interval) and its own reactions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

import aiohttp

from corral.client.api import ApiClient
from corral.client.errors import ApiError
from corral.client.informer import Informer, object_key
from corral.client.resources import PODS
from corral.clock import Clock, RealClock
from corral.sim.hollow import RENEW_INTERVAL, HollowNode, NodeShape

log = logging.getLogger(__name__)

Obj = dict[str, Any]


class _PooledClient(ApiClient):
    """An ApiClient whose requests go through a shared session."""

    def __init__(self, pool: ApiClient, **kwargs: Any) -> None:
        super().__init__(pool.server, **kwargs)
        self._pool = pool

    def _get_session(self) -> aiohttp.ClientSession:
        return self._pool._get_session()

    async def close(self) -> None:
        self._closed = True  # the pool owns the session


class HollowCluster:
    def __init__(self, server: str, *, token: str | None, ca_file: str | None = None,
                 insecure: bool = False, count: int = 100, prefix: str = "hollow-",
                 shape: NodeShape | None = None, lease_interval: float = RENEW_INTERVAL,
                 workers: int = 64, clock: Clock | None = None) -> None:
        if count < 1:
            raise ValueError(f"nodes: must be at least 1, got {count}")
        if lease_interval <= 0:
            raise ValueError(f"lease_interval: must be positive, got {lease_interval}")
        self.clock = clock or RealClock()
        self.pool = ApiClient(server, token=token, ca_file=ca_file, insecure=insecure,
                              user_agent="corral-hollow-node", timeout=60.0)
        shape = shape or NodeShape()
        self.nodes: dict[str, HollowNode] = {}
        for i in range(count):
            name = f"{prefix}{i}"
            client = _PooledClient(self.pool, token=token, ca_file=ca_file, insecure=insecure,
                                   user_agent=f"corral-hollow-node/{name}", timeout=60.0)
            self.nodes[name] = HollowNode(client, name, i, shape, self.clock, renew_interval=lease_interval)
        self.lease_interval = lease_interval
        self.workers = workers
        self.pods = Informer(self.pool, PODS, field_selector="spec.nodeName!=", clock=self.clock)
        self.pods.add_handler(on_add=self._dispatch, on_update=lambda old, new: self._dispatch(new))
        self._work: asyncio.Queue[str] = asyncio.Queue()
        self._queued: set[str] = set()
        self.handled = 0
        self.errors = 0

    def _dispatch(self, pod: Obj) -> None:
        node = self.nodes.get((pod.get("spec") or {}).get("nodeName", ""))
        if node is None or not node.wants(pod):
            return
        key = object_key(pod)
        if key not in self._queued:
            self._queued.add(key)
            self._work.put_nowait(key)

    async def _worker(self) -> None:
        while True:
            key = await self._work.get()
            self._queued.discard(key)
            pod = self.pods.cache.get(key)
            if pod is None:
                continue
            node = self.nodes.get((pod.get("spec") or {}).get("nodeName", ""))
            if node is None:
                continue
            try:
                await node.handle(pod)
                self.handled += 1
            except ApiError as exc:
                self.errors += 1
                log.warning("hollow %s: pod %s: %s", node.name, key, exc)

    async def register(self, concurrency: int = 32) -> None:
        gate = asyncio.Semaphore(concurrency)

        async def one(node: HollowNode) -> None:
            async with gate:
                await node.register()
                await node.renew_lease()

        await asyncio.gather(*(one(n) for n in self.nodes.values()))

    async def _renew_forever(self) -> None:
        """Each node renews once per interval; renewals are spread evenly."""
        nodes: Sequence[HollowNode] = list(self.nodes.values())
        step = self.lease_interval / len(nodes)
        inflight: set[asyncio.Task[None]] = set()
        while True:
            for node in nodes:
                if len(inflight) < 256:
                    task = asyncio.ensure_future(self._renew(node))
                    inflight.add(task)
                    task.add_done_callback(inflight.discard)
                await self.clock.sleep(step)

    async def _renew(self, node: HollowNode) -> None:
        try:
            await node.renew_lease()
        except ApiError as exc:
            log.warning("hollow %s: lease renewal failed: %s", node.name, exc)

    async def run(self, ready: asyncio.Event | None = None) -> None:
        """Register every node, then serve pods and renew leases until cancelled."""
        await self.register()
        tasks = [asyncio.ensure_future(self.pods.run()), asyncio.ensure_future(self._renew_forever())]
        tasks += [asyncio.ensure_future(self._worker()) for _ in range(self.workers)]
        try:
            await self.pods.wait_synced()
            log.info("%d hollow nodes registered", len(self.nodes))
            if ready is not None:
                ready.set()
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(BaseException):
                    await t
            await self.pool.close()
