"""What a pod worker does around its containers' starts and stops: volumes,
environment, probes, lifecycle hooks and exec.

Kept apart from :mod:`corral.agent.pod_worker` (which decides *when* to
start, restart and stop) as a mixin over the same worker state, so each
file holds one concern: the worker's loop there, the container's life here.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from corral.agent.exec import plan_for, run_captured
from corral.agent.hooks import grace_after_hook, run_hook
from corral.agent.probes import ContainerProbes, ProbeConfigError, ProbeLoop, unhealthy_message
from corral.agent.stats import MARKER, marker_value
from corral.agent.volumes import VolumeError, container_mounts, mount_env
from corral.runtime.protocol import ContainerHandle, ExecPlan, StartError

if TYPE_CHECKING:
    from corral.agent.pod_worker import PodWorker

log = logging.getLogger(__name__)

VOLUME_REFRESH = 5.0
"""How often configMap/secret/downwardAPI volumes are re-read while the pod runs."""
POST_START_LIMIT = 60.0
DEFAULT_GRACE = 30


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and value >= 0 else default


class ContainerLife:
    """Mixin for :class:`PodWorker`."""

    # -- volumes -------------------------------------------------------------

    async def _sync_volumes(self: PodWorker, pod: dict[str, Any]) -> bool:
        """Set up the pod's volumes, and refresh those built from objects
        every few seconds; False while they cannot be set up (the pod then
        waits in ContainerCreating and an Event says why)."""
        manager = self.ctx.volumes
        if manager is None or not (pod.get("spec") or {}).get("volumes"):
            self.volumes = self.volumes or {}
            return True
        now = self.ctx.clock.monotonic()
        if self.volumes is not None and now - self._volumes_at < VOLUME_REFRESH:
            self._next_wake = min(self._next_wake, VOLUME_REFRESH)
            return True
        try:
            self.volumes = await manager.prepare(
                pod, host_ip=self.ctx.address, pod_ip=self.pod_ip
            )
        except VolumeError as exc:
            self._event("Warning", "FailedMount", str(exc))
            self._next_wake = min(self._next_wake, 2.0)
            return self.volumes is not None  # set up before: keep running on the old files
        except OSError as exc:
            self._event("Warning", "FailedMount", f"setting up volumes: {exc}")
            self._next_wake = min(self._next_wake, 2.0)
            return self.volumes is not None
        self._volumes_at = now
        self._next_wake = min(self._next_wake, VOLUME_REFRESH)
        return True

    async def _mount_args(self: PodWorker, pod: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
        """``mounts=`` for a runtime that can mount, nothing for one that cannot
        (the container then learns its volume paths from the environment)."""
        if not spec.get("volumeMounts"):
            return {}
        try:
            mounts = container_mounts(spec, self.volumes or {})
        except VolumeError as exc:
            raise StartError("CreateContainerConfigError", str(exc)) from None
        return {"mounts": mounts} if await self._can_mount(pod) else {}

    async def _can_mount(self: PodWorker, pod: dict[str, Any]) -> bool:
        runtime: Any = self.ctx.runtime
        if hasattr(runtime, "handler_for"):
            runtime = runtime.runtimes[await runtime.handler_for(pod)]
        supported = getattr(runtime, "mounts_supported", None)
        return supported is not None and bool(supported(pod))

    async def _container_env(self: PodWorker, pod: dict[str, Any], spec: dict[str, Any]) -> dict[str, str]:
        env = await self.ctx.env.build(pod, spec, host_ip=self.ctx.address, pod_ip=self.pod_ip)
        if spec.get("volumeMounts"):
            try:
                container_mounts(spec, self.volumes or {})
            except VolumeError as exc:
                raise StartError("CreateContainerConfigError", str(exc)) from None
            if not await self._can_mount(pod):
                env.update(mount_env(spec, self.volumes or {}))
                self._event("Normal", "VolumesByEnvironment",
                            f"container {spec.get('name', '')}: this node's runtime cannot mount volumes at "
                            "their mountPath; their host paths are in CORRAL_VOLUME_*/CORRAL_MOUNT_* variables")
        env[MARKER] = marker_value(self.uid, str(spec.get("name", "")))
        return env

    # -- probes --------------------------------------------------------------

    def _make_probes(self: PodWorker, spec: dict[str, Any], key: str, init: bool) -> ContainerProbes | None:
        if init or not any(spec.get(p) for p in ("livenessProbe", "readinessProbe", "startupProbe")):
            return None
        try:
            return ContainerProbes(
                spec,
                pod_ip=self.pod_ip,
                run_exec=self._exec_runner(key, spec),
                clock=self.ctx.clock,
                on_change=self._probe_changed,
            )
        except ProbeConfigError as exc:
            raise StartError("CreateContainerConfigError", str(exc)) from None

    def _watch_health(
        self: PodWorker, pod: dict[str, Any], spec: dict[str, Any], key: str, handle: ContainerHandle
    ) -> None:
        """Probes for an adopted instance; a kill for a failed one."""
        probes = self.probes.get(key)
        if probes is None:
            try:
                probes = self._make_probes(spec, key, handle.init)
            except StartError as exc:
                log.warning("pod %s/%s: %s", self.namespace, self.name, exc)
                return
            if probes is None:
                return
            self.probes[key] = probes
            probes.start()
        if probes.kill_message and key not in self._killing:
            grace = _probe_grace(pod, spec, probes)
            task = asyncio.get_running_loop().create_task(
                self._kill(key, spec, handle, probes.kill_message, grace)
            )
            self._killing[key] = task
            task.add_done_callback(lambda _t, key=key: self._killing.pop(key, None))

    def _probe_changed(self: PodWorker, probes: ContainerProbes, loop: ProbeLoop) -> None:
        if loop.failures > 0:
            self._event("Warning", "Unhealthy", unhealthy_message(loop))
        self._wake.set()

    def _stop_probes(self: PodWorker, key: str) -> None:
        probes = self.probes.pop(key, None)
        if probes is not None:
            probes.stop()

    async def _kill(
        self: PodWorker, key: str, spec: dict[str, Any], handle: ContainerHandle, why: str, grace: float
    ) -> None:
        self._event("Normal", "Killing", why)
        try:
            await self._stop_one(key, handle, grace, spec=spec)
        finally:
            self._wake.set()

    # -- hooks ---------------------------------------------------------------

    async def _stop_one(
        self: PodWorker,
        key: str,
        handle: ContainerHandle,
        grace: float,
        spec: dict[str, Any] | None = None,
    ) -> None:
        """preStop within the grace period, then SIGTERM with what is left."""
        spec = spec if spec is not None else self._spec_of(key)
        spent = 0.0
        hook = ((spec or {}).get("lifecycle") or {}).get("preStop")
        if hook and spec is not None:
            began = self.ctx.clock.monotonic()
            error = await run_hook(
                hook,
                spec,
                pod_ip=self.pod_ip,
                run_exec=self._exec_runner(key, spec, handle),
                clock=self.ctx.clock,
                timeout=max(grace, 1.0),
                field_path=f"spec.containers[{spec.get('name')}].lifecycle.preStop",
            )
            spent = self.ctx.clock.monotonic() - began
            if error:
                self._event("Warning", "FailedPreStopHook", f"PreStopHook failed: {error}")
        probes = self.probes.get(key)
        if probes is not None:  # kept (not popped) so a dying container is not probed anew
            probes.stop()
        await self.ctx.runtime.stop_container(handle, grace_after_hook(grace, spent))

    async def _post_start(
        self: PodWorker, pod: dict[str, Any], spec: dict[str, Any], key: str, handle: ContainerHandle
    ) -> None:
        hook = (spec.get("lifecycle") or {}).get("postStart")
        if not hook:
            return
        error = await run_hook(
            hook,
            spec,
            pod_ip=self.pod_ip,
            run_exec=self._exec_runner(key, spec, handle),
            clock=self.ctx.clock,
            timeout=POST_START_LIMIT,
            field_path=f"spec.containers[{spec.get('name')}].lifecycle.postStart",
        )
        if error:
            self._event("Warning", "FailedPostStartHook", f"PostStartHook failed: {error}")
            grace = _int((pod.get("spec") or {}).get("terminationGracePeriodSeconds"), DEFAULT_GRACE)
            self._event("Normal", "Killing", f"FailedPostStartHook: stopping container {spec.get('name')}")
            self._stop_probes(key)
            await self.ctx.runtime.stop_container(handle, grace)
            self.states[key] = await self.ctx.runtime.container_state(handle)

    # -- exec ----------------------------------------------------------------

    def _spec_of(self: PodWorker, key: str) -> dict[str, Any] | None:
        spec = (self.pod or {}).get("spec") or {}
        init = key.startswith("init:")
        name = key.removeprefix("init:")
        for c in spec.get("initContainers" if init else "containers") or []:
            if c.get("name") == name:
                return dict(c)
        return None

    def _exec_runner(
        self: PodWorker, key: str, spec: dict[str, Any], handle: ContainerHandle | None = None
    ) -> Any:
        async def run(argv: list[str], timeout: float) -> tuple[int, str]:
            target = handle or self.handles.get(key)
            if target is None:
                return -1, "container is not running"
            plan = await self.exec_plan(key, argv, tty=False, handle=target, spec=spec)
            return await run_captured(plan, timeout)

        return run

    async def exec_plan(
        self: PodWorker,
        key: str,
        command: list[str],
        *,
        tty: bool,
        handle: ContainerHandle | None = None,
        spec: dict[str, Any] | None = None,
    ) -> ExecPlan:
        """How to run ``command`` in the container (kubectl exec, probes, hooks)."""
        handle = handle or self.handles[key]
        spec = spec if spec is not None else (self._spec_of(key) or {})
        env = self.envs.get(key)
        if env is None and self.pod is not None:
            try:
                env = await self._container_env(self.pod, spec)
            except StartError:
                env = {}
            self.envs[key] = env
        return await plan_for(
            self.ctx.runtime,
            handle,
            command,
            tty=tty,
            env=env or {},
            cwd=spec.get("workingDir"),
        )


def _probe_grace(pod: dict[str, Any], spec: dict[str, Any], probes: ContainerProbes) -> float:
    """A liveness/startup probe's own terminationGracePeriodSeconds wins
    over the pod's, as in Kubernetes."""
    for field in ("livenessProbe", "startupProbe"):
        own = (spec.get(field) or {}).get("terminationGracePeriodSeconds")
        if isinstance(own, int) and own >= 0:
            return float(own)
    return float(_int((pod.get("spec") or {}).get("terminationGracePeriodSeconds"), DEFAULT_GRACE))
