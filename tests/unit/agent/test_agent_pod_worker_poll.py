"""A running pod's containers are looked at every POLL_RUNNING without a
full sync; a change (an exit) brings the full sync, and with it the restart."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from corral.agent import pod_worker
from corral.agent.backoff import RestartBackoff
from corral.agent.env import EnvBuilder
from corral.agent.logs import LogStore
from corral.agent.pod_worker import PodWorker, WorkerContext
from corral.client.events import EventRecorder
from corral.clock import RealClock
from corral.runtime.protocol import ContainerHandle, ContainerState, LogPaths


class FakeRuntime:
    """Containers that run until told to exit."""

    def __init__(self) -> None:
        self.started: list[ContainerHandle] = []
        self.exited: set[str] = set()
        self.looks = 0

    async def start_container(self, pod: dict[str, Any], container: dict[str, Any], logs: LogPaths,
                              env: dict[str, str], *, attempt: int = 0, init: bool = False,
                              **_: Any) -> ContainerHandle:
        meta = pod["metadata"]
        handle = ContainerHandle(f"c{len(self.started)}", meta["uid"], meta["namespace"], meta["name"],
                                 container["name"], attempt, logs.path, init)
        self.started.append(handle)
        return handle

    async def container_state(self, handle: ContainerHandle) -> ContainerState:
        self.looks += 1
        at = datetime(2026, 1, 1, tzinfo=UTC)
        if handle.id in self.exited:
            return ContainerState("exited", at, exit_code=1, finished_at=at)
        return ContainerState("running", at)

    async def remove_container(self, handle: ContainerHandle) -> None:
        pass


class FakeClient:
    def __init__(self) -> None:
        self.statuses: list[dict[str, Any]] = []

    async def replace_status(self, res: Any, body: dict[str, Any]) -> dict[str, Any]:
        self.statuses.append(body["status"])
        return body


async def until(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


@pytest.fixture
def poll(monkeypatch: pytest.MonkeyPatch) -> float:
    monkeypatch.setattr(pod_worker, "POLL_RUNNING", 0.02)
    return 0.02


async def test_running_containers_are_polled_without_full_syncs(tmp_path: Path, poll: float) -> None:
    runtime, client = FakeRuntime(), FakeClient()
    recorder = EventRecorder(client, "kubelet")  # type: ignore[arg-type]
    ctx = WorkerContext(client=client, runtime=runtime, logs=LogStore(tmp_path), recorder=recorder,  # type: ignore[arg-type]
                        clock=RealClock(), node_name="n1", address="127.0.0.1", backoff=RestartBackoff(),
                        sync_slots=asyncio.Semaphore(1), env=EnvBuilder(client))  # type: ignore[arg-type]
    pod = {"metadata": {"name": "p", "namespace": "default", "uid": "u1"},
           "spec": {"nodeName": "n1", "containers": [{"name": "main", "command": ["sleep", "1"]}]}}
    worker = PodWorker(ctx, pod)
    syncs = 0
    real_sync = worker.sync

    async def counted() -> None:
        nonlocal syncs
        syncs += 1
        await real_sync()

    worker.sync = counted  # type: ignore[method-assign]
    task = asyncio.create_task(worker.run())
    try:
        await until(lambda: client.statuses and client.statuses[-1]["phase"] == "Running")
        looks = runtime.looks
        await until(lambda: runtime.looks >= looks + 5)  # five polls
        assert syncs == 1 and len(runtime.started) == 1
        runtime.exited.add(runtime.started[0].id)
        await until(lambda: len(runtime.started) == 2)  # noticed by a poll, restarted by a sync
        assert runtime.started[1].attempt == 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
