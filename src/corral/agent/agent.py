"""The node agent: one per machine, the kubelet of corral.

It registers its Node, heartbeats, watches the pods bound to it and keeps a
worker per pod, serves their logs, and records Events. It is crash-only:
nothing it needs lives only in its memory. On start it lists what the
runtime still runs, gives each container back to its pod's worker (adoption,
no restart) and removes those whose pod is gone. A clean stop leaves the
containers running for the next agent process to adopt.

A real node (``state_in_memory``) writes object-backed volumes into a tmpfs
at ``data_dir/run`` (:mod:`corral.runtime.memfs`); it stays mounted while
pods run and is unmounted by a stop that leaves none.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from corral.agent.backoff import RestartBackoff
from corral.agent.env import EnvBuilder
from corral.agent.exec import ExecOptions, concrete_runtime
from corral.agent.fencing import FenceOptions, attach_fence, fence_annotations
from corral.agent.logs import LogStore
from corral.agent.node import NodeStatusManager
from corral.agent.pod_worker import PodWorker, WorkerContext
from corral.agent.runtimes import RuntimeSet
from corral.agent.server import AgentServer, LogError, LogTarget
from corral.agent.servingcert import ServingCertificates
from corral.agent.startsteps import StartSteps
from corral.agent.stats import ContainerRef, Sample, StatsCollector
from corral.agent.volumes import VolumeManager
from corral.client.api import ApiClient
from corral.client.errors import ApiError, NotFoundError
from corral.client.events import EventRecorder
from corral.client.informer import Informer
from corral.client.resources import PODS, RUNTIMECLASSES
from corral.clock import Clock, RealClock
from corral.net.node import NodeNetwork
from corral.net.podnet import POD_NETWORK_ANNOTATION
from corral.runtime.memfs import MemoryDir
from corral.runtime.protocol import ContainerHandle, ExecPlan, Runtime

log = logging.getLogger(__name__)

MAX_CONCURRENT_SYNCS = 32
"""Pod syncs in flight at once. A sync mostly waits (on a supervisor's fork
and the kernel's cgroup attach, on the Docker engine, on the API server), so
a burst of pods starts about as many times faster as this allows, until the
CPU is the limit; 8 made a 100-pod burst on Docker wait in line."""
HOUSEKEEPING_EVERY = 30.0
ORPHAN_GRACE = 10.0


class Agent:
    def __init__(
        self,
        client: ApiClient,
        *,
        node_name: str,
        data_dir: Path,
        runtime: Runtime | RuntimeSet,
        clock: Clock | None = None,
        address: str = "127.0.0.1",
        port: int = 10250,
        system_reserved: dict[str, str] | None = None,
        fencing: FenceOptions | None = None,
        proxy_mode: str = "userspace",
        pod_network: Any = None,
        state_in_memory: bool | None = None,
    ) -> None:
        """``state_in_memory``: secrets, tokens and other object-backed
        volumes in a tmpfs; None: as the runtime set says (true for the
        runtimes of a real node, corral.agent.runtimes.build_runtimes)."""
        self.client = client
        self.node_name = node_name
        self.data_dir = Path(data_dir)
        self.runtime = RuntimeSet.of(runtime)
        in_memory = self.runtime.state_in_memory if state_in_memory is None else state_in_memory
        self.memory = MemoryDir(self.data_dir / "run", wanted=in_memory)
        self.runtime.set_lookup(self._runtime_class, node_name)
        self.clock = clock or RealClock()
        self.address = address
        self.port = port
        self.logs = LogStore(self.data_dir / "logs")
        self.system_reserved = dict(system_reserved or {})
        self.stats = StatsCollector(node_name)
        self.steps = StartSteps()
        self.allocatable: dict[str, str] = {}
        """Filled from the Node's status; what downward-API refs report without limits."""
        self.server = AgentServer(
            self._resolve_log,
            address=address,
            port=port,
            tls=ServingCertificates(client, node_name, self.data_dir, [address], clock=self.clock),
            clock=self.clock,
            resolve_exec=self._resolve_exec,
            stats=self._stats,
            resolve_forward=self._resolve_forward,
            steps=self.steps,
        )
        idle = asyncio.Event()  # no pod sync running (WorkerContext keeps it)
        # A pod's Created/Started Events wait (a few seconds at most) for the
        # syncs starting other pods, as they would compete with them for the API.
        self.recorder = EventRecorder(client, "kubelet", host=node_name, clock=self.clock, yield_to=idle)
        self.informer = Informer(
            client, PODS, field_selector=f"spec.nodeName={node_name}", clock=self.clock
        )
        self.workers: dict[str, PodWorker] = {}  # by pod uid
        self.ready = asyncio.Event()
        self._ctx = WorkerContext(
            client=client,
            runtime=self.runtime,
            logs=self.logs,
            recorder=self.recorder,
            clock=self.clock,
            node_name=node_name,
            address=address,
            backoff=RestartBackoff(),
            sync_slots=asyncio.Semaphore(MAX_CONCURRENT_SYNCS),
            idle=idle,
            steps=self.steps,
            env=EnvBuilder(client, self.allocatable),
            volumes=VolumeManager(client, self.data_dir / "volumes", self.allocatable,
                                  memory=self.memory.path / "volumes" if in_memory else None),
        )
        self.network = NodeNetwork(client, address=address, clock=self.clock,
                                   proxy_mode=proxy_mode, node_name=node_name)
        self._ctx.env.network = self.network.pod_env
        self.pod_network = pod_network
        """net.podnet.PodNetwork: pods of the process runtime get their own network."""
        if pod_network is not None:
            for runtime in self.runtime.runtimes.values():
                runtime.pod_network = pod_network  # type: ignore[attr-defined]
            self.runtime.pod_network = pod_network
            self._ctx.pod_ips = pod_network.pod_ip
            self._ctx.prepare_network = lambda pod: pod_network.prepare(pod, self.runtime)
            node_env = self.network.pod_env
            self._ctx.env.network = lambda pod: {**node_env(pod), **pod_network.pod_env(pod)}
        self._adopted: dict[str, list[ContainerHandle]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.node: NodeStatusManager | None = None
        self.fencing = fencing
        self.fence = attach_fence(self, fencing) if fencing is not None else None

    async def run(self) -> None:
        """Run until cancelled."""
        self.port = await self.server.start()
        log.info("agent %s serving on %s:%d", self.node_name, self.address, self.port)
        try:
            await asyncio.to_thread(self.memory.open)
            self._spawn(self.runtime.warm_up(), "runtime warm-up")
            self.node = NodeStatusManager(
                self.client,
                self.node_name,
                address=self.address,
                port=self.port,
                data_dir=self.data_dir,
                clock=self.clock,
                runtime_version=self.runtime.version(),
                annotations=self.runtime.annotations(),
                system_reserved=self.system_reserved,
            )
            if self.fence is not None and self.fencing is not None:
                self.node.annotations.update(fence_annotations(self.fencing))
                self.node.on_renewed = self.fence.renewed
                self._spawn(self.fence.run(), "fence")
            self.node.annotations[POD_NETWORK_ANNOTATION] = "cni" if self.pod_network else "host"
            self._spawn(self.recorder.run(), "event recorder")
            self._spawn(self.network.run(), "service proxy and DNS")
            await self._register()
            if self.server.tls is not None:  # the Node's addresses exist now: the CSR can name them
                await self.server.tls.ensure()
                self._spawn(self.server.tls.run(), "serving certificate")
            if self.pod_network is not None:
                self._spawn(self.pod_network.run(), "pod network")
            self.allocatable.update(self.node.allocatable)
            for handle in await self.runtime.list():
                self._adopted.setdefault(handle.pod_uid, []).append(handle)
            await self.network.wait_ready(10.0)
            self.informer.add_handler(self._on_add, self._on_update, self._on_delete)
            self._spawn(self.informer.run(), "pod informer")
            await self.informer.wait_synced()
            self._remove_orphans_of_adoption()
            self._spawn(self.node.run(), "node heartbeat")
            self._spawn(self._housekeeping(), "housekeeping")
            self.ready.set()
            await asyncio.Event().wait()
        finally:
            await self._shutdown()

    async def _register(self) -> None:
        assert self.node is not None
        delay = 0.5
        while True:
            try:
                await self.node.register()
                await self.node.renew_lease()
                return
            except ApiError as exc:
                log.warning("registering node %s failed (%s); retrying", self.node_name, exc)
                await self.clock.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _shutdown(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.pod_network is not None:  # first: quick, and nothing below may skip it
            try:
                await self.pod_network.close()
            except Exception:
                log.exception("closing the pod network failed")
        if self._ctx.relist is not None:
            await self._ctx.relist.close()
        await self.recorder.close(timeout=1.0)
        await self.server.stop()
        await self.runtime.close()
        if self.memory.close():
            log.info("no pod left: unmounted the agent's state tmpfs %s", self.memory.path)

    async def _runtime_class(self, name: str) -> dict[str, Any] | None:
        try:
            return await self.client.get(RUNTIMECLASSES, name)
        except NotFoundError:
            return None

    def _spawn(self, coro: Coroutine[Any, Any, Any], what: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=what)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("agent task %s died", task.get_name(), exc_info=task.exception())

    # -- pods ----------------------------------------------------------------

    def _on_add(self, pod: dict[str, Any]) -> None:
        self._ensure_worker(pod)

    def _on_update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        old_uid = (old.get("metadata") or {}).get("uid")
        if old_uid != (new.get("metadata") or {}).get("uid") and old_uid in self.workers:
            self.workers[old_uid].update(None)
        self._ensure_worker(new)

    def _on_delete(self, pod: dict[str, Any]) -> None:
        worker = self.workers.get(str((pod.get("metadata") or {}).get("uid", "")))
        if worker is not None:
            worker.update(None)

    def _ensure_worker(self, pod: dict[str, Any]) -> None:
        uid = str((pod.get("metadata") or {}).get("uid", ""))
        worker = self.workers.get(uid)
        if worker is not None:
            worker.update(pod)
            return
        current, older = _split_instances(self._adopted.pop(uid, []))
        worker = PodWorker(self._ctx, pod, adopted=current, older=older, on_done=self._worker_done)
        self.workers[uid] = worker
        self._spawn(worker.run(), f"pod {uid}")

    def _worker_done(self, worker: PodWorker) -> None:
        if self.workers.get(worker.uid) is worker:
            del self.workers[worker.uid]

    def _remove_orphans_of_adoption(self) -> None:
        """Containers from an earlier agent whose pod no longer exists here."""
        orphans = [h for handles in self._adopted.values() for h in handles]
        self._adopted.clear()
        if orphans:
            self._spawn(self._remove(orphans), "orphan removal")

    async def _remove(self, handles: list[ContainerHandle]) -> None:
        for handle in handles:
            log.info(
                "removing container %s of gone pod %s/%s",
                handle.id,
                handle.pod_namespace,
                handle.pod_name,
            )
        await asyncio.gather(*(self.runtime.stop_container(h, ORPHAN_GRACE) for h in handles))
        for handle in handles:
            await self.runtime.remove_container(handle)
            self.logs.remove_pod(handle.pod_namespace, handle.pod_name, handle.pod_uid)
        for uid in {h.pod_uid for h in handles}:
            await self.runtime.remove_pod(uid)

    async def _housekeeping(self) -> None:
        while True:
            await self.clock.sleep(HOUSEKEEPING_EVERY)
            try:
                strays = [h for h in await self.runtime.list() if h.pod_uid not in self.workers]
                if strays:
                    await self._remove(strays)
                self.logs.remove_pods_except(self.workers)
                if self.pod_network is not None:  # pods gone while no container of theirs ran
                    for uid in set(self.pod_network.pods()) - set(self.workers):
                        await self.runtime.remove_pod(uid)
                if self._ctx.volumes is not None:
                    self._ctx.volumes.remove_pods_except(self.workers)
            except Exception:
                log.exception("agent housekeeping failed")

    # -- logs ----------------------------------------------------------------

    async def _resolve_log(
        self, namespace: str, name: str, container: str, previous: bool
    ) -> LogTarget:
        pod = self.informer.cache.get(f"{namespace}/{name}")
        if pod is None:
            raise LogError(404, f'pod "{name}" not found on node {self.node_name}')
        uid = str(pod["metadata"].get("uid", ""))
        spec = pod.get("spec") or {}
        key = _container_key(spec, container)
        worker = self.workers.get(uid)
        if key is None or worker is None:
            raise LogError(404, f'container "{container}" in pod "{name}" is not valid')
        handle = worker.handles.get(key)
        if previous:
            current = handle.attempt if handle is not None else None
            earlier = [
                a
                for a in self.logs.attempts(namespace, name, uid, container)
                if current is None or a < current
            ]
            if not earlier:
                raise LogError(
                    400, f'previous terminated container "{container}" in pod "{name}" not found'
                )
            paths = self.logs.paths(namespace, name, uid, container, earlier[-1])
            return LogTarget(paths, _always_finished)
        if handle is None:
            reason = worker.waiting.get(key, ("ContainerCreating", None))[0]
            raise LogError(
                400, f'container "{container}" in pod "{name}" is waiting to start: {reason}'
            )
        paths = self.logs.paths(namespace, name, uid, container, handle.attempt)

        async def finished() -> bool:
            if worker.handles.get(key) is not handle:
                return True
            return (await self.runtime.container_state(handle)).status == "exited"

        return LogTarget(paths, finished)


    # -- exec and stats --------------------------------------------------------

    async def _resolve_exec(
        self, namespace: str, name: str, container: str, opts: ExecOptions
    ) -> ExecPlan:
        pod = self.informer.cache.get(f"{namespace}/{name}")
        if pod is None:
            raise LogError(404, f'pod "{name}" not found on node {self.node_name}')
        key = _container_key(pod.get("spec") or {}, container)
        worker = self.workers.get(str(pod["metadata"].get("uid", "")))
        if key is None or worker is None:
            raise LogError(404, f'container not found ("{container}")')
        handle = worker.handles.get(key)
        if handle is None or (await self.runtime.container_state(handle)).status != "running":
            raise LogError(400, f'container "{container}" in pod "{name}" is not running')
        return await worker.exec_plan(key, opts.command, tty=opts.tty)

    async def _resolve_forward(self, namespace: str, name: str) -> str:
        """Where kubectl port-forward reaches the pod's ports: its address."""
        pod = self.informer.cache.get(f"{namespace}/{name}")
        worker = self.workers.get(str((pod or {}).get("metadata", {}).get("uid", "")))
        if pod is None or worker is None:
            raise LogError(404, f'pod "{name}" not found on node {self.node_name}')
        if (pod.get("status") or {}).get("phase") != "Running":
            raise LogError(400, f'pod "{name}" is not running')
        return worker.pod_ip

    async def _stats(self) -> dict[str, Any]:
        handles: dict[tuple[str, str], ContainerHandle] = {}
        refs = []
        for worker in list(self.workers.values()):
            for handle in list(worker.handles.values()):
                if handle.init or worker.states.get(handle.container_name) is None:
                    continue
                if worker.states[handle.container_name].status != "running":
                    continue
                refs.append(
                    ContainerRef(worker.namespace, worker.name, worker.uid, handle.container_name)
                )
                handles[(worker.uid, handle.container_name)] = handle

        async def from_runtime(ref: ContainerRef) -> Sample | None:
            handle = handles[(ref.pod_uid, ref.container)]
            read = getattr(concrete_runtime(self.runtime, handle), "stats", None)
            stats = await read(handle) if read is not None else None
            if stats is None:
                return None
            return Sample(stats.cpu_usage_ns, stats.memory_bytes, time.monotonic())

        return await self.stats.summary(refs, from_runtime)


async def _always_finished() -> bool:
    return True


def _container_key(spec: dict[str, Any], name: str) -> str | None:
    if any(c.get("name") == name for c in spec.get("containers") or []):
        return name
    if any(c.get("name") == name for c in spec.get("initContainers") or []):
        return f"init:{name}"
    return None


def _split_instances(
    handles: list[ContainerHandle],
) -> tuple[list[ContainerHandle], list[ContainerHandle]]:
    """The newest instance of each container, and the older ones."""
    newest: dict[tuple[bool, str], ContainerHandle] = {}
    older: list[ContainerHandle] = []
    for handle in sorted(handles, key=lambda h: h.attempt):
        key = (handle.init, handle.container_name)
        if key in newest:
            older.append(newest[key])
        newest[key] = handle
    return list(newest.values()), older
