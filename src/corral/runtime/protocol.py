"""What the agent needs from a container runtime, and nothing more.

The agent thinks in pods and container specs; a runtime thinks in handles.
Every runtime (host processes, Docker) implements :class:`Runtime`, and one
test suite can run against each. A handle carries the pod identity so that an
agent restarted after a crash can rebuild its picture from :meth:`Runtime.list`
alone (crash-only: the runtime's own state is the source of truth).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol

ContainerStatus = Literal["running", "exited"]


@dataclass(frozen=True)
class ContainerHandle:
    """One started instance of a container (a restart gets a new handle)."""

    id: str
    pod_uid: str
    pod_namespace: str
    pod_name: str
    container_name: str
    attempt: int
    """The pod's restart count for this container when the instance started."""
    log_path: Path
    init: bool = False
    runtime: str = "process"
    """The handler of the runtime that owns the instance (``process``, ``docker``)."""
    start_steps: dict[str, float] | None = field(default=None, compare=False, repr=False)
    """CLOCK_MONOTONIC marks the runtime reported for this start (the process
    runtime: ``laid_out`` by the agent's side, then its supervisor's
    ``began``, ``isolated``, ``spawned``); None if none (agent/startsteps.py)."""

    @property
    def container_id(self) -> str:
        """The ``containerID`` written into pod status (``docker://<id>``...)."""
        return f"{self.runtime}://{self.id}"


@dataclass(frozen=True)
class ContainerState:
    status: ContainerStatus
    started_at: datetime
    exit_code: int | None = None
    signal: int | None = None
    finished_at: datetime | None = None
    reason: str | None = None
    """Set when the runtime knows better than the exit code (e.g. lost track)."""
    message: str | None = None


@dataclass(frozen=True)
class LogPaths:
    """Where one container instance writes its output. The writer rotates
    ``path`` to ``path.1`` when it passes ``max_bytes``, keeping one older
    generation, so a chatty container cannot fill the disk."""

    path: Path
    max_bytes: int

    @property
    def rotated(self) -> Path:
        return self.path.with_name(self.path.name + ".1")


@dataclass(frozen=True)
class Mount:
    """A directory or file the agent prepared (a volume) and where the
    container should see it. A runtime with a mount namespace per pod binds
    ``host_path`` at ``container_path``; one without cannot, and says so
    through :meth:`Runtime.mounts_supported` (the agent then tells the
    container where the volume is through environment variables)."""

    host_path: Path
    container_path: str
    read_only: bool = False


@dataclass(frozen=True)
class ExecPlan:
    """How to run a command inside a running container: the agent spawns
    ``argv`` (with a pty for ``tty``) and pipes the streams. For a process in
    its own namespaces this is e.g. ``nsenter -t PID ... -- CMD``; for Docker
    ``docker exec -i CID CMD``."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    cwd: str = "/"


@dataclass(frozen=True)
class ContainerStats:
    """Cumulative CPU time and current memory of one container instance
    (cgroup ``cpuacct.usage``/``cpu.stat`` and working set, or the sum over
    its process tree)."""

    cpu_usage_ns: int
    memory_bytes: int
    timestamp: datetime


class StartError(Exception):
    """A container could not be started; ``reason`` is the waiting reason the
    pod shows (Kubernetes' CreateContainerConfigError, RunContainerError...)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


class Runtime(Protocol):
    handler: str
    """The RuntimeClass handler this runtime serves (``process``, ``docker``)."""

    def version(self) -> str:
        """``<handler>://<version>`` for the Node's containerRuntimeVersion."""

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
        """Start one container instance; raises :class:`StartError` for a spec
        the runtime cannot run, with a message a user can act on.

        ``mounts``: the pod's volumes for this container (see :class:`Mount`).
        The agent passes it only when :meth:`mounts_supported` says yes, so a
        runtime without the parameter keeps working."""

    async def stop_container(self, handle: ContainerHandle, grace_seconds: float) -> None:
        """SIGTERM the container's whole process tree, SIGKILL after the
        grace; returns once it has exited (idempotent)."""

    async def container_state(self, handle: ContainerHandle) -> ContainerState:
        """Running, or exited with its code/signal and times."""

    async def list(self) -> list[ContainerHandle]:
        """Every instance the runtime knows of, running or exited, including
        those started by an earlier agent process."""

    async def remove_container(self, handle: ContainerHandle) -> None:
        """Forget an exited instance (kills it first if it still runs)."""

    async def remove_pod(self, pod_uid: str) -> None:
        """Release what the pod's containers shared (namespaces, sandbox),
        once its containers are removed (idempotent)."""

    async def close(self) -> None:
        """Let go of connections and helpers; running containers stay
        (the agent is crash-only and adopts them on its next start)."""


class OptionalRuntime(Protocol):
    """Methods a runtime may add; the agent looks them up with ``getattr``
    and falls back when they are absent.

    Note to the runtime implementers (issue 4, item 1): please implement
    these in ProcessRuntime/DockerRuntime when you can --
    ``mounts_supported`` (True when the pod gets its own mount namespace and
    ``start_container`` honours ``mounts``), ``exec_plan`` (nsenter into the
    container's namespaces / docker exec) and ``stats`` (from the container's
    cgroup). Without them the agent runs exec on the host with the
    container's env and cwd, exposes volumes by env, and reads stats from
    the container's process tree in /proc.

    How the agent reaches them through a RuntimeSet (agent/container_life.py,
    agent/exec.py): ``exec_plan`` and ``stats`` on
    ``runtimes[handle.runtime]``; ``mounts_supported`` on
    ``runtimes[await handler_for(pod)]``, and when that says True the agent
    calls ``RuntimeSet.start_container(..., mounts=[...])`` -- so
    RuntimeSet.start_container must accept ``mounts`` and pass it on before a
    runtime starts answering True.
    """

    def mounts_supported(self, pod: dict[str, Any]) -> bool: ...

    async def exec_plan(
        self, handle: ContainerHandle, command: list[str], *, tty: bool
    ) -> ExecPlan | None:
        """None: the runtime has no special way in; run on the host."""

    async def stats(self, handle: ContainerHandle) -> ContainerStats | None:
        """None: unknown (the agent then falls back to /proc)."""
