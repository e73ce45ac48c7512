"""Many hollow nodes in one process.

Each node is a real API client, as a kubelet is: it owns its Node, its Lease
(renewed every ``lease_period`` seconds, spread evenly over the period, its
first renewal one period after it registered) and, by default
(``pod_watch="per-node"``), its own list+watch of the pods bound to it
(``fieldSelector=spec.nodeName=<name>``), resumed from its last
resourceVersion when the server ends the stream and re-listed after a 410.
The API server indexes watchers by that selector, so 5,000 node watches cost
it no more per pod event than 4 do; what they cost is here: a long-lived
HTTP/1.1 connection (a file descriptor and a TLS read buffer, see
``trim_tls_read_buffers``) per node, and 5,000 initial LISTs, started as
each node registers and gated so they do not stampede the server.

``pod_watch="shared"`` is the cheaper alternative for the machine running
the sim: one watch on bound pods (``spec.nodeName!=``) whose events go to
the node named in ``spec.nodeName``; a node receives exactly the events its
own watch would, but the server sees one watcher instead of N.

Requests (registration, renewals, pod status writes) share one pool of
keep-alive connections. Renewals run from one heap of due times and start as
each node registers: a node must not wait for 4,999 others before its first
renewal, or the node lifecycle controller rightly declares it dead.
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import contextlib
import heapq
import logging
import resource
from collections.abc import Mapping
from typing import Any

import aiohttp

from corral.client.api import KEEPALIVE_SECONDS, ApiClient
from corral.client.errors import ApiError
from corral.client.http1 import Http1Pool
from corral.client.informer import Informer, object_key, strip_managed_fields
from corral.client.resources import PODS
from corral.clock import Clock, RealClock
from corral.sim.hollow import LEASE_PERIOD, HollowNode, NodeShape

log = logging.getLogger(__name__)

Obj = dict[str, Any]
POD_WATCHES = ("per-node", "shared")
REQUEST_CONNECTIONS = 1000
"""Each kubelet has its own connection, so a renewal never waits behind 99
others' requests; a pool of 100 connections for 5,000 nodes made renewals
queue here (1/5 of the needed rate, with the server a third idle) and
healthy nodes look dead."""
SPARE_FDS = 256  # the event loop, logs, sockets being closed
TLS_READ_BUFFER = 32 * 1024


def trim_tls_read_buffers(size: int = TLS_READ_BUFFER) -> None:
    """asyncio gives every TLS connection a zero-filled 256 KiB read buffer
    (SSLProtocol.max_size), and reads plaintext in chunks of that size: with
    a watch connection per node that is 1.3 GB of resident buffers for
    5,000 nodes. Two full TLS records (16 KiB each) per read is plenty for
    watch events and pod status replies. Process-wide, so it is only ever
    lowered, and only by the process that runs the hollow nodes."""
    proto = asyncio.sslproto.SSLProtocol
    if getattr(proto, "max_size", 0) > size:
        proto.max_size = size


def fds_needed(count: int, pod_watch: str) -> int:
    """Open files the sim may hold: every request connection, a watch
    connection per node (per-node) or one (shared), and some spare."""
    return REQUEST_CONNECTIONS + (count if pod_watch == "per-node" else 1) + SPARE_FDS


def raise_fd_limit(wanted: int) -> int:
    """Raise the soft RLIMIT_NOFILE to ``wanted``; OSError naming both
    limits if the hard limit forbids it (per-node watches hold a socket
    each, and running out of descriptors mid-run fails nodes one by one)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return int(wanted if soft == resource.RLIM_INFINITY else soft)
    if hard != resource.RLIM_INFINITY and hard < wanted:
        raise OSError(f"open files: need {wanted}, but the hard limit (ulimit -Hn) is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return wanted


class _Pool(ApiClient):
    """The connections all hollow nodes share: ``REQUEST_CONNECTIONS`` for
    requests, and ``watch_connections`` for watches (each a long-lived
    stream holding its connection, so one per node with per-node watches)."""

    def __init__(self, server: str, *, watch_connections: int, **kwargs: Any) -> None:
        super().__init__(server, **kwargs)
        self.connection_limit = watch_connections  # the aiohttp session's, which carries watches

    def _get_pool(self) -> Http1Pool:
        if self._pool is None and not self._closed:
            self._pool = Http1Pool(ssl_context=self._ssl, unix_socket=self.unix_socket,
                                   limit=REQUEST_CONNECTIONS, keepalive=KEEPALIVE_SECONDS)
        return super()._get_pool()


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
                 workers: int = 64, clock: Clock | None = None, max_renewals_in_flight: int = 800,
                 pod_watch: str = "per-node", watch_starts: int = 32,
                 node_tokens: Mapping[str, str] | None = None) -> None:
        if count < 1:
            raise ValueError(f"nodes: must be at least 1, got {count}")
        if lease_period <= 0:
            raise ValueError(f"lease_period: must be positive, got {lease_period}")
        if pod_watch not in POD_WATCHES:
            raise ValueError(f"pod_watch: must be one of {', '.join(POD_WATCHES)}, got {pod_watch!r}")
        if watch_starts < 1:
            raise ValueError(f"watch_starts: must be at least 1, got {watch_starts}")
        self.clock = clock or RealClock()
        self.pod_watch = pod_watch
        watches = count if pod_watch == "per-node" else 1
        self.pool = _Pool(server, watch_connections=watches + 16, token=token, ca_file=ca_file,
                          insecure=insecure, user_agent="corral-hollow-node", timeout=60.0)
        shape = shape or NodeShape()
        self.nodes: dict[str, HollowNode] = {}
        for i in range(count):
            name = f"{prefix}{i}"
            # Its own identity when given one (sim/identity.py), as an agent's.
            own = node_tokens.get(name, token) if node_tokens else token
            client = _PooledClient(self.pool, token=own, ca_file=ca_file, insecure=insecure,
                                   user_agent=f"corral-hollow-node/{name}", timeout=60.0)
            self.nodes[name] = HollowNode(client, name, i, shape, self.clock, lease_period=lease_period)
        self.own_identities = bool(node_tokens)
        self.lease_period = lease_period
        self._due: list[tuple[float, int, str]] = []  # (monotonic due time, index, node)
        self._due_changed = asyncio.Event()
        self._renew_slots = asyncio.Semaphore(max_renewals_in_flight)
        self.late_renewals = 0  # renewals started more than a period late: the server is behind
        self.workers = workers
        self.shared: Informer | None = None
        self.watches: dict[str, Informer] = {}  # node -> its own pod informer (per-node)
        if pod_watch == "shared":
            self.shared = Informer(self.pool, PODS, field_selector="spec.nodeName!=", clock=self.clock,
                                   transform=strip_managed_fields)
            self.shared.add_handler(on_add=self._dispatch, on_update=lambda old, new: self._dispatch(new))
        else:
            for name, node in self.nodes.items():
                self.watches[name] = self._node_watch(node)
        self._watch_starts = asyncio.Semaphore(watch_starts)
        self._watch_tasks: list[asyncio.Task[None]] = []
        self._work: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._queued: set[tuple[str, str]] = set()
        self.handled = 0
        self.errors = 0

    def _node_watch(self, node: HollowNode) -> Informer:
        """The node's own list+watch of its pods, as a kubelet's."""
        informer = Informer(node.client, PODS, field_selector=f"spec.nodeName={node.name}", clock=self.clock,
                            transform=strip_managed_fields)

        def enqueue(pod: Obj) -> None:
            if node.wants(pod):
                self._enqueue(node.name, pod)

        informer.add_handler(on_add=enqueue, on_update=lambda old, new: enqueue(new))
        return informer

    def _dispatch(self, pod: Obj) -> None:
        node = self.nodes.get((pod.get("spec") or {}).get("nodeName", ""))
        if node is not None and node.wants(pod):
            self._enqueue(node.name, pod)

    def _enqueue(self, node: str, pod: Obj) -> None:
        item = (node, object_key(pod))
        if item not in self._queued:
            self._queued.add(item)
            self._work.put_nowait(item)

    def cached_pod(self, node: str, key: str) -> Obj | None:
        """The newest state of a pod on ``node`` this process has seen."""
        informer = self.shared if self.shared is not None else self.watches[node]
        pod = informer.cache.get(key)
        if pod is None or (pod.get("spec") or {}).get("nodeName") != node:
            return None
        return pod

    async def _worker(self) -> None:
        while True:
            item = await self._work.get()
            self._queued.discard(item)
            name, key = item
            pod = self.cached_pod(name, key)
            if pod is None:
                continue
            try:
                await self.nodes[name].handle(pod)
                self.handled += 1
            except ApiError as exc:
                self.errors += 1
                log.warning("hollow %s: pod %s: %s", name, key, exc)

    async def register(self, concurrency: int = 32) -> None:
        """Register every node; with per-node watches, each node's first
        list starts as soon as it registered (gated by ``watch_starts``)
        and this returns once every node's watch has listed."""
        gate = asyncio.Semaphore(concurrency)
        starts: list[asyncio.Task[None]] = []

        async def one(node: HollowNode) -> None:
            async with gate:
                await node.register()
            self._renew_after(node, self.clock.monotonic() + self.lease_period)
            if node.name in self.watches:
                starts.append(asyncio.ensure_future(self._start_watch(self.watches[node.name])))

        try:
            await asyncio.gather(*(one(n) for n in self.nodes.values()))
            await asyncio.gather(*starts)
        finally:
            for t in starts:
                t.cancel()

    async def _start_watch(self, informer: Informer) -> None:
        async with self._watch_starts:
            self._watch_tasks.append(asyncio.ensure_future(informer.run()))
            await informer.wait_synced()

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
        informers = [self.shared] if self.shared is not None else list(self.watches.values())
        # Lists beyond each watch's first: re-lists after a 410 or a broken stream.
        relists = sum(max(0, i.lists - 1) for i in informers)
        return (f"renewals={renewals} late_renewals={self.late_renewals} "
                f"pods_handled={self.handled} pod_errors={self.errors} "
                f"pod_watch={self.pod_watch} pod_relists={relists}")

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
        """Register every node (each renewing its lease and, per-node,
        watching its pods from then on), then serve pods until cancelled."""
        trim_tls_read_buffers()
        tasks = [asyncio.ensure_future(self._renew_forever()), asyncio.ensure_future(self._report_forever())]
        tasks += [asyncio.ensure_future(self._worker()) for _ in range(self.workers)]
        try:
            if self.shared is not None:
                tasks.append(asyncio.ensure_future(self.shared.run()))
            if self.own_identities:  # the server reads new token entries within seconds
                from corral.sim.identity import wait_accepted

                await wait_accepted(next(iter(self.nodes.values())).client)
            await self.register()
            if self.shared is not None:
                await self.shared.wait_synced()
            log.info("%d hollow nodes registered (pod watch: %s)", len(self.nodes), self.pod_watch)
            if ready is not None:
                ready.set()
            await asyncio.gather(*tasks, *self._watch_tasks)
        finally:
            tasks += self._watch_tasks
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(BaseException):
                    await t
            await self.pool.close()
