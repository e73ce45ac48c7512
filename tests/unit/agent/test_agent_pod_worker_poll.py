"""When a pod worker syncs: a running pod's containers are looked at every
POLL_RUNNING without a full sync, and a change (an exit) brings the full
sync, and with it the restart; the watch's echo of the worker's own status
write brings none, any other change of the pod does."""

from __future__ import annotations

import asyncio
import copy
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from corral.agent import pod_worker, status
from corral.agent.backoff import RestartBackoff
from corral.agent.env import EnvBuilder
from corral.agent.logs import LogStore
from corral.agent.pod_worker import PodWorker, WorkerContext
from corral.client.errors import ConflictError
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

    async def replace_status(self, res: Any, body: dict[str, Any], *, full: bool = True) -> dict[str, Any]:
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


POD = {"metadata": {"name": "p", "namespace": "default", "uid": "u1", "resourceVersion": "1"},
       "spec": {"nodeName": "n1", "containers": [{"name": "main", "command": ["sleep", "1"]}]}}


class Counted(PodWorker):
    syncs = 0

    async def sync(self) -> None:
        self.syncs += 1
        await super().sync()


def worker_for(tmp_path: Path, runtime: FakeRuntime, client: FakeClient) -> Counted:
    recorder = EventRecorder(client, "kubelet")  # type: ignore[arg-type]
    ctx = WorkerContext(client=client, runtime=runtime, logs=LogStore(tmp_path), recorder=recorder,  # type: ignore[arg-type]
                        clock=RealClock(), node_name="n1", address="127.0.0.1", backoff=RestartBackoff(),
                        sync_slots=asyncio.Semaphore(1), env=EnvBuilder(client))  # type: ignore[arg-type]
    return Counted(ctx, copy.deepcopy(POD))


async def test_running_containers_are_polled_without_full_syncs(tmp_path: Path, poll: float) -> None:
    runtime, client = FakeRuntime(), FakeClient()
    worker = worker_for(tmp_path, runtime, client)
    task = asyncio.create_task(worker.run())
    try:
        await until(lambda: client.statuses and client.statuses[-1]["phase"] == "Running")
        looks = runtime.looks
        await until(lambda: runtime.looks >= looks + 5)  # five polls
        assert worker.syncs == 1 and len(runtime.started) == 1
        runtime.exited.add(runtime.started[0].id)
        await until(lambda: len(runtime.started) == 2)  # noticed by a poll, restarted by a sync
        assert runtime.started[1].attempt == 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def stored(status: dict[str, Any]) -> dict[str, Any]:
    """As the server keeps it: conditions without their null lastProbeTime."""
    out = copy.deepcopy(status)
    for cond in out["conditions"]:
        cond.pop("lastProbeTime", None)
    return out


async def test_the_echo_of_its_own_status_write_is_no_reason_to_sync(tmp_path: Path) -> None:
    runtime, client = FakeRuntime(), FakeClient()
    worker = worker_for(tmp_path, runtime, client)
    task = asyncio.create_task(worker.run())
    try:
        await until(lambda: client.statuses and worker.syncs == 1)
        echo = copy.deepcopy(POD)
        echo["metadata"].update(resourceVersion="2", managedFields=[{"manager": "kubelet"}])
        echo["status"] = stored(client.statuses[-1])
        worker.update(echo)
        assert not worker._wake.is_set() and worker.pod is echo  # newest pod kept, no sync
        other = copy.deepcopy(echo)
        other["metadata"]["resourceVersion"] = "3"
        other["status"]["conditions"].append({"type": "DisruptionTarget", "status": "True"})
        worker.update(other)  # another writer's status: the worker looks (and puts its own back)
        await until(lambda: worker.syncs == 2)
        labelled = copy.deepcopy(echo)
        labelled["metadata"].update(resourceVersion="4", labels={"a": "b"})
        worker.update(labelled)
        await until(lambda: worker.syncs == 3)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


class HeldClient(FakeClient):
    """A status write that waits until released (a slow commit on the server)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.waiting = 0

    async def replace_status(self, res: Any, body: dict[str, Any], *, full: bool = True) -> dict[str, Any]:
        self.waiting += 1
        await self.release.wait()
        return await super().replace_status(res, body)


async def test_a_status_write_holds_no_sync_slot_but_keeps_the_agent_busy(tmp_path: Path) -> None:
    runtime, client = FakeRuntime(), HeldClient()
    first = worker_for(tmp_path, runtime, client)  # one slot between them
    other = copy.deepcopy(POD)
    other["metadata"].update(name="q", uid="u2")
    second = Counted(first.ctx, other)
    tasks = [asyncio.create_task(w.run()) for w in (first, second)]
    try:
        await until(lambda: client.waiting == 2)  # both started, both writes pending
        assert len(runtime.started) == 2 and not client.statuses
        assert not first.ctx.idle.is_set()  # Events still wait for the writes
        client.release.set()
        await until(lambda: len(client.statuses) == 2 and first.ctx.idle.is_set())
        assert {s["phase"] for s in client.statuses} == {"Running"}
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def test_same_status_ignores_only_nulls() -> None:
    written = {"phase": "Running", "conditions": [{"type": "Ready", "lastProbeTime": None, "status": "True"}],
               "containerStatuses": [{"name": "main", "lastState": {}, "ready": True}]}
    echoed = stored(written)
    assert status.same_status(echoed, written) and status.same_status(written, echoed)
    assert status.same_status(None, {"phase": None}) is False  # no status is not an empty one
    for change in (lambda s: s.update(phase="Pending"),
                   lambda s: s["conditions"][0].update(status="False"),
                   lambda s: s["conditions"].append({"type": "Initialized"}),
                   lambda s: s["containerStatuses"][0].update(ready=False),
                   lambda s: s["containerStatuses"][0].update(lastState=None),
                   lambda s: s.update(podIP="10.0.0.2")):
        other = copy.deepcopy(echoed)
        change(other)
        assert not status.same_status(other, written)


class ConflictOnceClient(FakeClient):
    """The first status write meets a newer pod (resourceVersion 7)."""

    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[dict[str, Any]] = []

    async def replace_status(self, res: Any, body: dict[str, Any], *, full: bool = True) -> dict[str, Any]:
        self.bodies.append(body)
        if len(self.bodies) == 1:
            raise ConflictError(409, "Conflict", "the object has been modified")
        return await super().replace_status(res, body)

    async def get(self, res: Any, name: str, namespace: str) -> dict[str, Any]:
        fresh = copy.deepcopy(POD)
        fresh["metadata"]["resourceVersion"] = "7"
        fresh["metadata"]["labels"] = {"added": "meanwhile"}
        return fresh


async def test_a_status_write_that_conflicts_is_sent_again_over_the_fresh_pod(tmp_path: Path) -> None:
    runtime, client = FakeRuntime(), ConflictOnceClient()
    worker = worker_for(tmp_path, runtime, client)
    task = asyncio.create_task(worker.run())
    try:
        await until(lambda: len(client.bodies) >= 2)
        first, retry = client.bodies[:2]
        assert first["metadata"] == {"name": "p", "namespace": "default", "uid": "u1", "resourceVersion": "1"}
        # The same status, only the status, over the resourceVersion read back.
        assert retry == {**first, "metadata": {**first["metadata"], "resourceVersion": "7"}}
        assert "spec" not in retry and client.statuses[0] == first["status"]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
