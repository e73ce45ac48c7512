"""The runtimes one node has, and which one each pod runs on.

A pod names a RuntimeClass (``spec.runtimeClassName``) whose ``handler`` is
the runtime to use; a pod that names none uses the node's default (Docker
where an engine answers, host processes otherwise). :class:`RuntimeSet`
presents all of them to the pod workers as one :class:`Runtime`: starts are
routed by the pod, everything else by the handle (each handle records the
runtime that made it), so adoption after an agent restart needs nothing more
than ``list()``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from corral.runtime.protocol import (
    ContainerHandle,
    ContainerState,
    LogPaths,
    Mount,
    Runtime,
    StartError,
)

log = logging.getLogger(__name__)

RUNTIMES_ANNOTATION = "corral.dev/runtimes"
"""Comma-separated handlers this node has; the scheduler filters on it."""
DEFAULT_RUNTIME_ANNOTATION = "corral.dev/default-runtime"
ISOLATION_ANNOTATION = "corral.dev/process-isolation"
"""What the process runtime can enforce here (namespaces, cgroup version),
or why it cannot (not root)."""

LOOKUP_TTL = 5.0

RuntimeClassLookup = Callable[[str], Awaitable[dict[str, Any] | None]]
"""RuntimeClass name → the object, or None when it does not exist."""


class RuntimeSet:
    handler = "set"

    def __init__(
        self,
        runtimes: dict[str, Runtime],
        default: str,
        lookup: RuntimeClassLookup | None = None,
        node_name: str = "",
    ) -> None:
        if not runtimes:
            raise ValueError("a node needs at least one runtime")
        if default not in runtimes:
            raise ValueError(
                f"default runtime {default!r} is not available here "
                f"(available: {', '.join(sorted(runtimes))})"
            )
        self.runtimes = dict(runtimes)
        self.default = default
        self.node_name = node_name
        self._lookup = lookup
        self._cache: dict[str, tuple[float, dict[str, Any] | None]] = {}
        self._inflight: dict[str, asyncio.Future[dict[str, Any] | None]] = {}
        self.pod_network: Any = None
        """net.podnet.PodNetwork when pods get network namespaces: released with the pod."""
        self.state_in_memory = False
        """The node keeps its small, churning state (container state, object-backed
        volumes) in a tmpfs (:mod:`corral.runtime.memfs`); set for a real node."""

    @classmethod
    def of(cls, runtime: Runtime | RuntimeSet) -> RuntimeSet:
        """A single runtime as a set whose default it is."""
        if isinstance(runtime, RuntimeSet):
            return runtime
        return cls({runtime.handler: runtime}, runtime.handler)

    def set_lookup(self, lookup: RuntimeClassLookup, node_name: str) -> None:
        self._lookup = lookup
        self.node_name = node_name

    # -- what the Node advertises --------------------------------------------

    @property
    def handlers(self) -> list[str]:
        return sorted(self.runtimes)

    def version(self) -> str:
        return self.runtimes[self.default].version()

    def annotations(self) -> dict[str, str]:
        out = {
            RUNTIMES_ANNOTATION: ",".join(self.handlers),
            DEFAULT_RUNTIME_ANNOTATION: self.default,
        }
        process = self.runtimes.get("process")
        isolation = getattr(process, "isolation", None)
        if isinstance(isolation, str):
            out[ISOLATION_ANNOTATION] = isolation
        return out

    # -- choosing ------------------------------------------------------------

    async def handler_for(self, pod: dict[str, Any]) -> str:
        """The handler the pod runs on here; StartError with what to fix
        when its RuntimeClass is unknown or this node lacks the handler."""
        name = (pod.get("spec") or {}).get("runtimeClassName")
        if not name:
            return self.default
        rc = await self._runtime_class(str(name))
        if rc is None:
            raise StartError(
                "CreateContainerConfigError",
                f'RuntimeClass "{name}" not found: spec.runtimeClassName must name an '
                "existing RuntimeClass (kubectl get runtimeclasses)",
            )
        handler = str(rc.get("handler") or "")
        if handler not in self.runtimes:
            raise StartError(
                "CreateContainerConfigError",
                f'RuntimeClass "{name}" uses handler "{handler}", which node '
                f'"{self.node_name}" does not have (it has: {", ".join(self.handlers)})',
            )
        return handler

    async def _runtime_class(self, name: str) -> dict[str, Any] | None:
        """Cached for a few seconds, and one request per name at a time: a
        burst of pods naming the same class must not become a burst of GETs
        (each of which holds a pod's sync slot while it waits)."""
        if self._lookup is None:
            return {"handler": name} if name in self.runtimes else None
        now = time.monotonic()
        hit = self._cache.get(name)
        if hit is not None and now - hit[0] < LOOKUP_TTL:
            return hit[1]
        pending = self._inflight.get(name)
        if pending is None:
            pending = asyncio.ensure_future(self._lookup(name))
            self._inflight[name] = pending
            pending.add_done_callback(lambda _f: self._inflight.pop(name, None))
        rc = await asyncio.shield(pending)
        self._cache[name] = (now, rc)
        return rc

    # -- Runtime, routed -------------------------------------------------------

    async def start_container(
        self,
        pod: dict[str, Any],
        container: dict[str, Any],
        logs: LogPaths,
        env: dict[str, str],
        *,
        attempt: int = 0,
        init: bool = False,
        mounts: Sequence[Mount] = (),
    ) -> ContainerHandle:
        runtime = self.runtimes[await self.handler_for(pod)]
        extra: dict[str, Any] = {"mounts": mounts} if mounts else {}
        return await runtime.start_container(
            pod, container, logs, env, attempt=attempt, init=init, **extra
        )

    async def stop_container(self, handle: ContainerHandle, grace_seconds: float) -> None:
        runtime = self.runtimes.get(handle.runtime)
        if runtime is not None:
            await runtime.stop_container(handle, grace_seconds)

    async def container_state(self, handle: ContainerHandle) -> ContainerState:
        runtime = self.runtimes.get(handle.runtime)
        if runtime is None:
            now = datetime.now(UTC)
            return ContainerState(
                "exited",
                now,
                exit_code=137,
                finished_at=now,
                reason="ContainerStatusUnknown",
                message=f"runtime {handle.runtime!r} is no longer available on this node",
            )
        return await runtime.container_state(handle)

    async def list(self) -> list[ContainerHandle]:
        found: list[ContainerHandle] = []
        for handler, runtime in sorted(self.runtimes.items()):
            try:
                found.extend(await runtime.list())
            except Exception:
                # One broken engine must not hide the other runtime's pods.
                log.exception("listing the %s runtime's containers failed", handler)
        return found

    async def remove_container(self, handle: ContainerHandle) -> None:
        runtime = self.runtimes.get(handle.runtime)
        if runtime is not None:
            await runtime.remove_container(handle)

    async def remove_pod(self, pod_uid: str) -> None:
        if self.pod_network is not None:  # CNI DEL while the namespace still exists
            await self.pod_network.release(pod_uid)
        await asyncio.gather(*(r.remove_pod(pod_uid) for r in self.runtimes.values()))

    async def warm_up(self) -> None:
        """Whatever each runtime prepares ahead of the first pod."""
        for runtime in self.runtimes.values():
            warm_up = getattr(runtime, "warm_up", None)
            if warm_up is not None:
                await warm_up()

    async def close(self) -> None:
        for runtime in self.runtimes.values():
            try:
                await runtime.close()
            except Exception:
                log.exception("closing the %s runtime failed", runtime.handler)


DEFAULT_CHOICES = ("auto", "process", "docker")


async def build_runtimes(
    data_dir: Path, default: str = "auto", *, node_name: str = "", docker_host: str | None = None
) -> RuntimeSet:
    """This machine's runtimes: host processes always, Docker when an engine
    answers (``DOCKER_HOST`` or the standard socket). ``auto`` makes Docker
    the default where it answers, processes otherwise."""
    from corral.runtime.docker import DockerRuntime
    from corral.runtime.process import ProcessRuntime

    if default not in DEFAULT_CHOICES:
        raise ValueError(f"default runtime {default!r}: must be one of {', '.join(DEFAULT_CHOICES)}")
    process = ProcessRuntime(Path(data_dir) / "runtime", memory=True)
    runtimes: dict[str, Runtime] = {"process": process}
    owner = str(Path(data_dir).resolve())
    docker = await asyncio.to_thread(DockerRuntime.connect, owner, docker_host)
    if docker is not None:
        runtimes["docker"] = docker
    elif default == "docker":
        await process.close()  # its state tmpfs, if it mounted one for nothing
        raise ValueError(
            "default runtime docker: no Docker engine answers "
            f"at {docker_host or 'DOCKER_HOST or /var/run/docker.sock'}"
        )
    chosen = default if default != "auto" else ("docker" if docker is not None else "process")
    log.info("runtimes: %s (default %s)", ", ".join(sorted(runtimes)), chosen)
    out = RuntimeSet(runtimes, chosen, node_name=node_name)
    out.state_in_memory = True
    return out
