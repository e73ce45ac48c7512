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
Lease (renewed every ``lease_period`` seconds, spread evenly over the
period, its first renewal one period after it registered) and its own
reactions. Renewals run from one heap of due times, and start as each node
registers: a node must not wait for 4,999 others before its first renewal,
or the node lifecycle controller rightly declares it dead.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
from typing import Any

import aiohttp

from corral.client.api import ApiClient
from corral.client.errors import ApiError
from corral.client.http1 import Http1Pool
from corral.client.informer import Informer, object_key
from corral.client.resources import PODS
from corral.clock import Clock, RealClock
from corral.sim.hollow import LEASE_PERIOD, HollowNode, NodeShape

log = logging.getLogger(__name__)

Obj = dict[str, Any]


class _Pool(ApiClient):
    """The connection pool all hollow nodes share. Each kubelet has its own
    connection, so a renewal never waits behind 99 others' requests; a pool
    of 100 connections for 5,000 nodes made renewals queue here (1/5 of the
    needed rate, with the server a third idle) and healthy nodes look dead."""

    connection_limit = 1000


class _PooledClient(ApiClient):
    """An ApiClient whose requests go through the shared pool's connections."""

    def __init__(self, pool: ApiClient, **kwargs: Any) -> None:
        super().__init__(pool.server, **kwargs)
        self._pool = pool

    def _get_session(self) -> aiohttp.ClientSession:
        return self._pool._get_session()

    def _get_pool(self) -> Http1Pool:
        return self._pool._get_pool()

    async def close(self) -> None:
        self._closed = True  # the pool owns the session


class HollowCluster:
    def __init__(self, server: str, *, token: str | None, ca_file: str | None = None,
                 insecure: bool = False, count: int = 100, prefix: str = "hollow-",
                 shape: NodeShape | None = None, lease_period: float = LEASE_PERIOD,
                 workers: int = 64, clock: Clock | None = None, max_renewals_in_flight: int = 800) -> None:
        if count < 1:
            raise ValueError(f"nodes: must be at least 1, got {count}")
        if lease_period <= 0:
            raise ValueError(f"lease_period: must be positive, got {lease_period}")
        self.clock = clock or RealClock()
        self.pool = _Pool(server, token=token, ca_file=ca_file, insecure=insecure,
                              user_agent="corral-hollow-node", timeout=60.0)
        shape = shape or NodeShape()
        self.nodes: dict[str, HollowNode] = {}
        for i in range(count):
            name = f"{prefix}{i}"
            client = _PooledClient(self.pool, token=token, ca_file=ca_file, insecure=insecure,
                                   user_agent=f"corral-hollow-node/{name}", timeout=60.0)
            self.nodes[name] = HollowNode(client, name, i, shape, self.clock, lease_period=lease_period)
        self.lease_period = lease_period
        self._due: list[tuple[float, int, str]] = []  # (monotonic due time, index, node)
        self._due_changed = asyncio.Event()
        self._renew_slots = asyncio.Semaphore(max_renewals_in_flight)
        self.late_renewals = 0  # renewals started more than a period late: the server is behind
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
            self._renew_after(node, self.clock.monotonic() + self.lease_period)

        await asyncio.gather(*(one(n) for n in self.nodes.values()))

    def _renew_after(self, node: HollowNode, at: float) -> None:
        heapq.heappush(self._due, (at, node.index, node.name))
        self._due_changed.set()

    async def _renew_forever(self) -> None:
        """Renew each node when due; the next renewal is due one period
        after the last was due (not after it finished), so a slow server
        delays renewals but does not slow the cadence down for good."""
        tasks: set[asyncio.Task[None]] = set()
        while True:
            now = self.clock.monotonic()
            while self._due and self._due[0][0] <= now:
                at, _, name = heapq.heappop(self._due)
                if now - at > self.lease_period:
                    self.late_renewals += 1
                    at = now
                self._renew_after(self.nodes[name], at + self.lease_period)
                await self._renew_slots.acquire()
                task = asyncio.ensure_future(self._renew(self.nodes[name]))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                task.add_done_callback(lambda _: self._renew_slots.release())
                now = self.clock.monotonic()
            self._due_changed.clear()
            wait = self._due[0][0] - now if self._due else None
            waiter = asyncio.ensure_future(self._due_changed.wait())
            timer = asyncio.ensure_future(self.clock.sleep(wait)) if wait is not None else None
            try:
                await asyncio.wait([t for t in (waiter, timer) if t], return_when=asyncio.FIRST_COMPLETED)
            finally:
                for t in (waiter, timer):
                    if t is not None:
                        t.cancel()

    def stats(self) -> str:
        renewals = sum(n.renewals for n in self.nodes.values())
        return (f"renewals={renewals} late_renewals={self.late_renewals} "
                f"pods_handled={self.handled} pod_errors={self.errors}")

    async def _report_forever(self, every: float = 10.0) -> None:
        """A line of counts now and then: a benchmark reads whether renewals
        fell behind (a node more than a period late may be declared dead)."""
        while True:
            await self.clock.sleep(every)
            log.info("hollow nodes: %s", self.stats())

    async def _renew(self, node: HollowNode) -> None:
        try:
            await node.renew_lease()
        except Exception as exc:  # the next period tries again, as a kubelet would
            log.warning("hollow %s: lease renewal failed: %s", node.name, exc)

    async def run(self, ready: asyncio.Event | None = None) -> None:
        """Register every node (each renewing its lease from then on), then
        serve pods until cancelled."""
        tasks = [asyncio.ensure_future(self._renew_forever()), asyncio.ensure_future(self._report_forever())]
        try:
            await self.register()
            tasks.append(asyncio.ensure_future(self.pods.run()))
            tasks += [asyncio.ensure_future(self._worker()) for _ in range(self.workers)]
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
