"""One worker per pod: make the containers match the pod, then say so.

A worker is level-triggered: every sync reads the newest pod from the
informer cache and the containers' states from the runtime, acts, and writes
the status if it changed. It wakes on pod updates, on a timer while anything
runs (the runtime is polled, cheaply: it reads files), and when a backoff
expires. Syncs of all workers share a semaphore, so a thousand pods cannot
run a thousand syncs at once; a failing sync is logged and retried, never
taken down with the others. A sync's status write is sent after its slot is
given back: it only waits for the API server (a durable commit).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from corral.agent.backoff import RestartBackoff
from corral.agent.container_life import ContainerLife
from corral.agent.env import EnvBuilder, expand_command
from corral.agent.logs import LogStore
from corral.agent.probes import ContainerProbes
from corral.agent.relist import Relist, Wake, settle
from corral.agent.startsteps import StartSteps
from corral.agent.status import (
    ContainerView,
    backoff_message,
    pod_status,
    running,
    same_status,
    terminated,
    waiting,
)
from corral.agent.volumes import PodVolume, VolumeManager
from corral.client.api import ApiClient
from corral.client.errors import ApiError, ConflictError, ForbiddenError, NotFoundError
from corral.client.events import EventRecorder
from corral.client.resources import PODS
from corral.clock import Clock, RealClock, format_timestamp
from corral.runtime.protocol import ContainerHandle, ContainerState, Runtime, StartError

log = logging.getLogger(__name__)

POLL_RUNNING = 1.0
RESYNC = 30.0
DEFAULT_GRACE = 30
STATUS_WRITE_META = ("name", "namespace", "uid", "resourceVersion")


@dataclass
class WorkerContext:
    """What all pod workers of one agent share."""

    client: ApiClient
    runtime: Runtime
    logs: LogStore
    recorder: EventRecorder
    clock: Clock
    node_name: str
    address: str
    backoff: RestartBackoff
    sync_slots: asyncio.Semaphore
    env: EnvBuilder
    volumes: VolumeManager | None = None
    pod_ips: Callable[[str], str | None] | None = None
    """Pod uid → its own address (net/podnet.py); None: pods share the node's."""
    prepare_network: Callable[[dict[str, Any]], Awaitable[Any]] | None = None
    """Gives a pod its network before its first container's environment is built."""
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    """Set while no sync runs: the agent's Events wait for it (client/events.py)."""
    syncing: int = 0
    steps: StartSteps = field(default_factory=StartSteps)
    """Marks of each pod's start steps (agent/startsteps.py)."""
    relist: Relist | None = None
    """Looks at the running containers of idle workers (agent/relist.py); made here if not given."""

    def __post_init__(self) -> None:
        self.idle.set()
        if self.relist is None:
            self.relist = Relist(self.clock)


class PodWorker(ContainerLife):
    def __init__(
        self,
        ctx: WorkerContext,
        pod: dict[str, Any],
        adopted: list[ContainerHandle] | None = None,
        older: list[ContainerHandle] | None = None,
        on_done: Callable[[PodWorker], None] | None = None,
    ) -> None:
        self.ctx = ctx
        self.pod: dict[str, Any] | None = pod
        meta = pod.get("metadata") or {}
        self.uid = str(meta.get("uid", ""))
        self.namespace = str(meta.get("namespace", ""))
        self.name = str(meta.get("name", ""))
        self.handles: dict[str, ContainerHandle] = {}
        self.states: dict[str, ContainerState] = {}
        self.restart_count: dict[str, int] = {}
        self.last_terminated: dict[str, dict[str, Any]] = {}
        self.waiting: dict[str, tuple[str, str | None]] = {}
        self.start_time = (pod.get("status") or {}).get("startTime")
        self.done = False
        self._on_done = on_done
        self._wake = Wake()
        self._next_wake = RESYNC
        self._poll = False  # containers run: look at them every POLL_RUNNING (_idle)
        self._last_status: dict[str, Any] | None = None
        self._unsent: tuple[dict[str, Any], dict[str, Any]] | None = None  # (pod, status) to write
        self._sent_status: dict[str, Any] | None = None  # set before the write: its echo may come first
        self._deleted = False
        self._start_failures = 0
        self.probes: dict[str, ContainerProbes] = {}
        self.envs: dict[str, dict[str, str]] = {}
        self._killing: dict[str, asyncio.Task[None]] = {}
        self.volumes: dict[str, PodVolume] | None = None
        self._volumes_at = float("-inf")
        for handle in sorted(adopted or [], key=lambda h: h.attempt):
            self._adopt(handle)
        self._older = list(older or [])
        if not self.handles:  # an adopted pod started under an earlier agent
            ctx.steps.seen(self.uid, self.namespace, self.name)

    # -- outside interface ---------------------------------------------------

    @property
    def pod_ip(self) -> str:
        own = self.ctx.pod_ips(self.uid) if self.ctx.pod_ips is not None else None
        return own or self.ctx.address

    def update(self, pod: dict[str, Any] | None) -> None:
        """The newest pod from the cache (None: it is gone)."""
        if pod is not None and (pod.get("metadata") or {}).get("uid") != self.uid:
            pod = None  # same name, new pod: this one is gone
        old, self.pod = self.pod, pod
        if pod is not None and old is not None and self._echo_of_own_status(old, pod):
            return
        self._wake.set()

    def _echo_of_own_status(self, old: dict[str, Any], new: dict[str, Any]) -> bool:
        """``new`` is ``old`` with the status this worker last wrote: the
        watch's echo of its own write, nothing to act on (the kubelet, too,
        does not sync a pod for a status-only change). Any other change,
        another writer's status included, wakes the worker."""
        if self._sent_status is None or not same_status(new.get("status"), self._sent_status):
            return False
        if any(old.get(k) != new.get(k) for k in old.keys() | new.keys() if k not in ("metadata", "status")):
            return False
        before, after = old.get("metadata") or {}, new.get("metadata") or {}
        ignored = ("resourceVersion", "managedFields")
        return all(before.get(k) == after.get(k) for k in before.keys() | after.keys() if k not in ignored)

    async def run(self) -> None:
        try:
            if self._older:
                await self.adopt_previous(self._older)
                self._older = []
            while not self.done:
                self._wake.clear()
                await self._sync_once()
                if not self.done:
                    await self._idle()
        finally:
            if self.done and self._on_done is not None:
                self._on_done(self)

    async def _sync_once(self) -> None:
        """One sync in a slot, then its status write out of it. In a burst
        of 100 pods the write (~170 ms, nearly all of it the server's
        commit) was a quarter of a slot's hold, and pods waited ~1 s for a
        slot; the agent counts as busy (``ctx.idle``) until it is sent."""
        await self.ctx.sync_slots.acquire()
        self.ctx.steps.mark(self.uid, "slot")
        self.ctx.syncing += 1
        self.ctx.idle.clear()
        try:
            try:
                await self._guarded(self.sync())
            finally:
                self.ctx.sync_slots.release()
            if self._unsent is not None:
                await self._guarded(self._send_status())
        finally:
            self.ctx.syncing -= 1
            if not self.ctx.syncing:
                self.ctx.idle.set()

    async def _guarded(self, step: Awaitable[None]) -> None:
        try:
            await step
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("pod %s/%s: sync failed", self.namespace, self.name)
            self._next_wake = min(self._next_wake, 2.0)

    async def _idle(self) -> None:
        """Until the next sync: a wake (the informer, a probe), the earliest
        timer a sync asked for, or a running container that stopped. Those
        are looked at every POLL_RUNNING by the node's one relist (as the
        kubelet's PLEG relists): a cheap read per container, and a full sync
        (a slot, the volumes, the status built and compared) only when one
        changed. Syncing every running pod every second took slots and CPU
        from the pods starting in a burst, and the more so the longer the
        burst lasted."""
        relist = self.ctx.relist
        if not self._poll or relist is None:
            await self._sleep(self._next_wake)
            return
        relist.watch(self, POLL_RUNNING)
        try:
            await self._sleep(self._next_wake)
        finally:
            relist.unwatch(self)

    def wake(self) -> None:
        """Sync soon (the relist saw a container stop)."""
        self._wake.set()

    async def stopped_running(self) -> bool:
        for key, handle in list(self.handles.items()):
            state = self.states.get(key)
            if state is not None and state.status == "running":
                if (await self.ctx.runtime.container_state(handle)).status != "running":
                    return True
        return False

    async def _sleep(self, seconds: float) -> bool:
        """True if woken before ``seconds`` passed."""
        if self._wake.is_set():
            return True
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._wake.waiter = waiter
        timer: asyncio.TimerHandle | asyncio.Task[None]
        if type(self.ctx.clock) is RealClock:
            timer = loop.call_later(max(seconds, 0.0), settle, waiter)
        else:  # a test's clock moves only through its own sleep
            timer = loop.create_task(self.ctx.clock.sleep(seconds))
            timer.add_done_callback(lambda _t: settle(waiter))
        try:
            await waiter
        finally:
            timer.cancel()
            self._wake.waiter = None
        return self._wake.is_set()

    # -- one sync ------------------------------------------------------------

    async def sync(self) -> None:
        self._next_wake = RESYNC
        self._poll = False
        pod = self.pod
        if pod is None or (pod.get("spec") or {}).get("nodeName") != self.ctx.node_name:
            await self._teardown()
            return
        if (pod.get("metadata") or {}).get("deletionTimestamp"):
            await self._terminate(pod)
            return
        if self.start_time is None:
            self.start_time = format_timestamp(self.ctx.clock.now())
        spec = pod.get("spec") or {}
        terminal = (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
        if not terminal and not await self._sync_volumes(pod):
            self._stage_status(pod, False)
            return
        self.ctx.steps.mark(self.uid, "volumes")
        init_specs = spec.get("initContainers") or []
        initialized = await self._sync_init(pod, init_specs, terminal)
        for c in spec.get("containers") or []:
            if initialized:
                await self._sync_container(pod, c, init=False, terminal=terminal)
        self._stage_status(pod, initialized)

    async def _sync_init(
        self, pod: dict[str, Any], specs: list[dict[str, Any]], terminal: bool
    ) -> bool:
        """Init containers run one at a time, in order, each to success."""
        for c in specs:
            await self._sync_container(pod, c, init=True, terminal=terminal)
            state = self.states.get(_key(c, True))
            if state is None or state.status != "exited" or state.exit_code != 0:
                return False
        return True

    async def _sync_container(
        self, pod: dict[str, Any], spec: dict[str, Any], *, init: bool, terminal: bool
    ) -> None:
        key = _key(spec, init)
        handle = self.handles.get(key)
        if handle is None:
            if terminal:
                return
            await self._start_when_allowed(pod, spec, init)
            return
        state = await self.ctx.runtime.container_state(handle)
        self.states[key] = state
        if state.status == "running":
            self._poll = True
            self._watch_health(pod, spec, key, handle)
            return
        self._stop_probes(key)
        if terminal or not _should_restart(pod, state, init):
            return
        now = self.ctx.clock.monotonic()
        ran_for = ((state.finished_at or state.started_at) - state.started_at).total_seconds()
        bkey = self._backoff_key(key)
        self.ctx.backoff.exited(bkey, handle.id, now, ran_for)
        self.last_terminated[key] = terminated(state, handle.container_id)
        remaining = self.ctx.backoff.remaining(bkey, now)
        if remaining > 0:
            self._enter_backoff(pod, key, bkey, remaining)
            return
        await self._start(pod, spec, init, attempt=handle.attempt + 1)

    async def _start_when_allowed(
        self, pod: dict[str, Any], spec: dict[str, Any], init: bool
    ) -> None:
        key = _key(spec, init)
        bkey = self._backoff_key(key)
        remaining = self.ctx.backoff.remaining(bkey, self.ctx.clock.monotonic())
        if remaining > 0:
            self._next_wake = min(self._next_wake, remaining)
            return
        attempt = self.restart_count[key] + 1 if key in self.restart_count else 0
        await self._start(pod, spec, init, attempt=attempt)

    def _enter_backoff(self, pod: dict[str, Any], key: str, bkey: str, remaining: float) -> None:
        name = key.removeprefix("init:")
        if self.waiting.get(key, ("",))[0] != "CrashLoopBackOff":
            self._event(
                "Warning",
                "BackOff",
                f"Back-off restarting failed container {name} in pod {_pod_ref(pod)}",
            )
        message = backoff_message(self.ctx.backoff.delay(bkey), name, pod)
        self.waiting[key] = ("CrashLoopBackOff", message)
        self._next_wake = min(self._next_wake, remaining)

    async def _start(
        self, pod: dict[str, Any], spec: dict[str, Any], init: bool, attempt: int
    ) -> None:
        key = _key(spec, init)
        name = spec.get("name", "")
        old = self.handles.pop(key, None)
        if old is not None:
            await self.ctx.runtime.remove_container(old)
            self.states.pop(key, None)
        self._stop_probes(key)
        steps = self.ctx.steps.container(self.uid, key)
        try:
            if self.ctx.prepare_network is not None:
                await self.ctx.prepare_network(pod)  # its own address, before probes and env read it
            steps.mark("network")
            probes = self._make_probes(spec, key, init)
            env = await self._container_env(pod, spec)
            logs = self.ctx.logs.paths(self.namespace, self.name, self.uid, name, attempt)
            extra = await self._mount_args(pod, spec)
            steps.mark("env")
            handle = await self.ctx.runtime.start_container(
                pod, expand_command(spec, env), logs, env, attempt=attempt, init=init, **extra
            )
        except StartError as exc:
            self._start_failed(pod, key, exc)
            return
        steps.done(handle)
        self.envs[key] = env
        self.ctx.logs.prune(self.namespace, self.name, self.uid, name, newest=attempt)
        self.handles[key] = handle
        self.restart_count[key] = attempt
        self.waiting.pop(key, None)
        self.states[key] = await self.ctx.runtime.container_state(handle)
        self._poll = True
        if self.states[key].status != "running":
            # It exited before we looked (``exit 2``): _idle's poll only notices
            # running containers stopping, so come back soon for the full sync.
            self._next_wake = min(self._next_wake, POLL_RUNNING)
        self._event("Normal", "Created", f"Created container: {name}")
        self._event("Normal", "Started", f"Started container {name}")
        if probes is not None:
            self.probes[key] = probes
            probes.start()
        await self._post_start(pod, spec, key, handle)

    def _start_failed(self, pod: dict[str, Any], key: str, exc: StartError) -> None:
        """A spec the runtime cannot run: say why on the pod and in an Event,
        and retry with backoff (the fix may be outside the pod, e.g. a
        missing ConfigMap or binary)."""
        self._start_failures += 1
        self.waiting[key] = (exc.reason, exc.message)
        self._event("Warning", "Failed", f"Error: {exc.message}")
        bkey = self._backoff_key(key)
        now = self.ctx.clock.monotonic()
        self.ctx.backoff.exited(bkey, f"start-failure-{self._start_failures}", now, 0.0)
        self._next_wake = min(self._next_wake, max(self.ctx.backoff.remaining(bkey, now), 0.5))

    # -- stopping ------------------------------------------------------------

    async def _stop_all(self, grace: float) -> None:
        live = []
        for key, handle in self.handles.items():
            state = await self.ctx.runtime.container_state(handle)
            if state.status == "running":
                live.append((key, handle))
                self._event("Normal", "Killing", f"Stopping container {handle.container_name}")
        await asyncio.gather(*(self._stop_one(key, h, grace) for key, h in live))
        for key, handle in self.handles.items():
            self.states[key] = await self.ctx.runtime.container_state(handle)

    async def _terminate(self, pod: dict[str, Any]) -> None:
        """Graceful deletion: stop within the grace period, then confirm to
        the API server that the pod is gone from this node."""
        if self._deleted:
            return
        meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
        grace = min(
            _int(meta.get("deletionGracePeriodSeconds"), DEFAULT_GRACE),
            _int(spec.get("terminationGracePeriodSeconds"), DEFAULT_GRACE),
        )
        await self._stop_all(grace)
        try:
            await self._write_status(pod, True)
        except ApiError as exc:
            log.info("pod %s/%s: final status not written: %s", self.namespace, self.name, exc)
        await self._remove_everything()
        try:
            await self.ctx.client.delete(
                PODS,
                self.name,
                self.namespace,
                grace_period_seconds=0,
                preconditions={"uid": self.uid},
            )
        except (NotFoundError, ConflictError):
            pass
        except ForbiddenError:
            # The node authorizer relates a node only to pods bound to it, and a
            # pod's nodeName never changes: refused means this pod is already
            # gone (deleted by someone else first, e.g. the garbage collector).
            log.debug("pod %s/%s: already deleted by another client", self.namespace, self.name)
        self._deleted = True

    async def _teardown(self) -> None:
        """The pod is gone or no longer ours: its containers go too."""
        spec = (self.pod or {}).get("spec") or {}
        if self.handles:
            await self._stop_all(_int(spec.get("terminationGracePeriodSeconds"), DEFAULT_GRACE))
        await self._remove_everything()
        self.done = True

    async def _remove_everything(self) -> None:
        for key in list(self.probes):
            self._stop_probes(key)
        for task in self._killing.values():
            task.cancel()
        if self.ctx.volumes is not None:
            self.ctx.volumes.remove_pod(self.uid)
        for handle in list(self.handles.values()):
            await self.ctx.runtime.remove_container(handle)
        self.handles.clear()
        await self.ctx.runtime.remove_pod(self.uid)
        self.ctx.logs.remove_pod(self.namespace, self.name, self.uid)
        self.ctx.backoff.forget_prefix(self.uid + "/")
        self.ctx.steps.forget(self.uid)

    # -- status --------------------------------------------------------------

    async def _write_status(self, pod: dict[str, Any], initialized: bool) -> None:
        self._stage_status(pod, initialized)
        await self._send_status()

    def _stage_status(self, pod: dict[str, Any], initialized: bool) -> None:
        """The status as it is now, to be sent by :meth:`_send_status` if it
        differs from the pod's and from the last one written."""
        self._unsent = None
        spec = pod.get("spec") or {}
        init_views = [self._view(c, True, initialized) for c in spec.get("initContainers") or []]
        views = [self._view(c, False, initialized) for c in spec.get("containers") or []]
        status = pod_status(
            pod,
            views,
            init_views,
            host_ip=self.ctx.address,
            pod_ip=self.pod_ip,
            start_time=self.start_time or format_timestamp(self.ctx.clock.now()),
            now=self.ctx.clock.now(),
        )
        if status == self._last_status or same_status(pod.get("status"), status):
            self._last_status = status
            return
        self._unsent = (pod, status)

    async def _send_status(self) -> None:
        if self._unsent is None:
            return
        (pod, status), self._unsent = self._unsent, None
        self._sent_status = status
        try:  # the answer (the whole pod again) is not needed: its head only
            await self.ctx.client.replace_status(PODS, _status_body(pod, status), full=False)
        except ConflictError:
            fresh = await self.ctx.client.get(PODS, self.name, self.namespace)
            if (fresh.get("metadata") or {}).get("uid") != self.uid:
                return
            await self.ctx.client.replace_status(PODS, _status_body(fresh, status), full=False)
        self._last_status = status
        self.ctx.steps.status_written(self.uid, status.get("phase"))

    def _view(self, spec: dict[str, Any], init: bool, initialized: bool) -> ContainerView:
        key = _key(spec, init)
        view = ContainerView(
            name=str(spec.get("name", "")),
            image=str(spec.get("image") or ""),
            restart_count=self.restart_count.get(key, 0),
            last_state=self.last_terminated.get(key, {}),
        )
        handle, state = self.handles.get(key), self.states.get(key)
        if key in self.waiting:
            view.state = waiting(*self.waiting[key])
            if handle is not None:
                view.container_id = handle.container_id
        elif handle is not None and state is not None:
            view.container_id = handle.container_id
            view.state = (
                running(state.started_at)
                if state.status == "running"
                else terminated(state, handle.container_id)
            )
            probes = self.probes.get(key)
            if probes is not None and state.status == "running":
                view.ready, view.started = probes.ready, probes.started
        elif not init and not initialized:
            view.state = waiting("PodInitializing")
        return view

    # -- helpers -------------------------------------------------------------

    def _adopt(self, handle: ContainerHandle) -> None:
        """Take over an instance an earlier agent started; an older instance
        of the same container becomes its lastState."""
        key = handle.container_name if not handle.init else f"init:{handle.container_name}"
        self.handles[key] = handle
        self.restart_count[key] = handle.attempt

    async def adopt_previous(self, older: list[ContainerHandle]) -> None:
        for handle in older:
            key = handle.container_name if not handle.init else f"init:{handle.container_name}"
            state = await self.ctx.runtime.container_state(handle)
            if state.status == "exited":
                self.last_terminated[key] = terminated(state, handle.container_id)
            await self.ctx.runtime.remove_container(handle)

    def _backoff_key(self, key: str) -> str:
        return f"{self.uid}/{key}"

    def _event(self, type_: str, reason: str, message: str) -> None:
        pod = self.pod or {
            "metadata": {"name": self.name, "namespace": self.namespace, "uid": self.uid}
        }
        obj = {"apiVersion": "v1", "kind": "Pod", "metadata": pod.get("metadata") or {}}
        self.ctx.recorder.record(obj, type_, reason, message)


def _status_body(pod: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    """Only what a status write takes (Kubernetes' status strategy keeps the
    stored spec and metadata): the server neither parses nor compares the
    pod's spec and managedFields again, and the resourceVersion still makes
    a write over a newer pod a conflict."""
    meta = pod.get("metadata") or {}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {k: meta[k] for k in STATUS_WRITE_META if k in meta}, "status": status}


def _key(spec: dict[str, Any], init: bool) -> str:
    name = str(spec.get("name", ""))
    return f"init:{name}" if init else name


def _should_restart(pod: dict[str, Any], state: ContainerState, init: bool) -> bool:
    policy = (pod.get("spec") or {}).get("restartPolicy", "Always")
    failed = state.exit_code != 0
    if init:  # init containers never restart after success
        return failed and policy != "Never"
    return policy == "Always" or (policy == "OnFailure" and failed)


def _pod_ref(pod: dict[str, Any]) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('name')}_{meta.get('namespace')}({meta.get('uid')})"


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and value >= 0 else default
