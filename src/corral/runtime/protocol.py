"""What the agent needs from a container runtime, and nothing more.

The agent thinks in pods and container specs; a runtime thinks in handles.
Every runtime (host processes, Docker) implements :class:`Runtime`, and one
test suite can run against each. A handle carries the pod identity so that an
agent restarted after a crash can rebuild its picture from :meth:`Runtime.list`
alone (crash-only: the runtime's own state is the source of truth).
"""

from __future__ import annotations

from dataclasses import dataclass
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

    @property
    def container_id(self) -> str:
        """The ``containerID`` written into pod status."""
        return f"process://{self.id}"


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


class StartError(Exception):
    """A container could not be started; ``reason`` is the waiting reason the
    pod shows (Kubernetes' CreateContainerConfigError, RunContainerError...)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


class Runtime(Protocol):
    async def start_container(
        self,
        pod: dict[str, Any],
        container: dict[str, Any],
        logs: LogPaths,
        env: dict[str, str],
        *,
        attempt: int = 0,
        init: bool = False,
    ) -> ContainerHandle:
        """Start one container instance; raises :class:`StartError` for a spec
        the runtime cannot run, with a message a user can act on."""

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
