"""RuntimeSet routing, with fake runtimes (pure logic: which runtime runs what)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from corral.agent.runtimes import ISOLATION_ANNOTATION, RUNTIMES_ANNOTATION, RuntimeSet
from corral.runtime.protocol import ContainerHandle, ContainerState, LogPaths, StartError


class FakeRuntime:
    def __init__(self, handler: str) -> None:
        self.handler = handler
        self.started: list[str] = []
        self.removed_pods: list[str] = []
        self.isolation = "none (test)"

    def version(self) -> str:
        return f"{self.handler}://1.0"

    async def start_container(self, pod: dict[str, Any], container: dict[str, Any],
                              logs: LogPaths, env: dict[str, str], *, attempt: int = 0,
                              init: bool = False) -> ContainerHandle:
        self.started.append(container["name"])
        return ContainerHandle(f"{self.handler}-{container['name']}", "uid", "ns", "p",
                               container["name"], attempt, logs.path, init, self.handler)

    async def container_state(self, handle: ContainerHandle) -> ContainerState:
        return ContainerState("running", datetime.now(UTC), reason=self.handler)

    async def list(self) -> list[ContainerHandle]:
        return [ContainerHandle(f"{self.handler}-x", "uid", "ns", "p", "x", 0, Path("/l"),
                                runtime=self.handler)]

    async def stop_container(self, handle: ContainerHandle, grace_seconds: float) -> None: ...
    async def remove_container(self, handle: ContainerHandle) -> None: ...

    async def remove_pod(self, pod_uid: str) -> None:
        self.removed_pods.append(pod_uid)

    async def close(self) -> None: ...


CLASSES = {"process": "process", "docker": "docker", "gvisor": "runsc"}


async def lookup(name: str) -> dict[str, Any] | None:
    return {"handler": CLASSES[name]} if name in CLASSES else None


def make() -> tuple[RuntimeSet, FakeRuntime, FakeRuntime]:
    proc, dock = FakeRuntime("process"), FakeRuntime("docker")
    return RuntimeSet({"process": proc, "docker": dock}, "docker", lookup, "n1"), proc, dock


def pod(runtime_class: str | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": []}
    if runtime_class:
        spec["runtimeClassName"] = runtime_class
    return {"metadata": {"uid": "uid"}, "spec": spec}


LOGS = LogPaths(Path("/tmp/x.log"), 1024)


async def test_routes_by_runtime_class_and_default() -> None:
    rs, proc, dock = make()
    h1 = await rs.start_container(pod("process"), {"name": "a"}, LOGS, {})
    h2 = await rs.start_container(pod(None), {"name": "b"}, LOGS, {})
    assert proc.started == ["a"] and dock.started == ["b"]
    assert h1.container_id == "process://process-a" and h2.container_id == "docker://docker-b"
    assert (await rs.container_state(h1)).reason == "process"
    assert {h.runtime for h in await rs.list()} == {"process", "docker"}
    await rs.remove_pod("uid")
    assert proc.removed_pods == dock.removed_pods == ["uid"]


@pytest.mark.parametrize("name, fragment", [
    ("nope", 'RuntimeClass "nope" not found'),
    ("gvisor", 'uses handler "runsc", which node "n1" does not have (it has: docker, process)'),
])
async def test_unusable_runtime_class_is_a_clear_start_error(name: str, fragment: str) -> None:
    rs, proc, dock = make()
    with pytest.raises(StartError) as err:
        await rs.start_container(pod(name), {"name": "a"}, LOGS, {})
    assert err.value.reason == "CreateContainerConfigError" and fragment in err.value.message
    assert proc.started == dock.started == []


async def test_a_handle_of_a_runtime_gone_reads_as_unknown() -> None:
    rs = RuntimeSet.of(FakeRuntime("process"))
    ghost = ContainerHandle("d", "uid", "ns", "p", "c", 0, Path("/l"), runtime="docker")
    state = await rs.container_state(ghost)
    assert state.status == "exited" and state.reason == "ContainerStatusUnknown"


def test_node_annotations_and_version() -> None:
    rs, _, _ = make()
    notes = rs.annotations()
    assert notes[RUNTIMES_ANNOTATION] == "docker,process"
    assert notes[ISOLATION_ANNOTATION] == "none (test)"
    assert rs.version() == "docker://1.0"
    with pytest.raises(ValueError, match="not available"):
        RuntimeSet({"process": FakeRuntime("process")}, "docker")


def test_process_runtime_says_when_it_cannot_isolate(tmp_path: Path) -> None:
    from corral.runtime.process import ProcessRuntime

    plain = ProcessRuntime(tmp_path / "rt", isolate=False)
    notes = RuntimeSet.of(plain).annotations()
    assert notes[ISOLATION_ANNOTATION].startswith("none (disabled)")
    assert notes[RUNTIMES_ANNOTATION] == "process"


async def test_a_burst_of_pods_looks_a_runtime_class_up_once() -> None:
    """Concurrent starts naming one class share one lookup (each lookup is a
    GET that would hold a pod's sync slot), and a failed one is not cached."""
    import asyncio

    calls: list[str] = []
    gate = asyncio.Event()

    async def slow_lookup(name: str) -> dict[str, Any] | None:
        calls.append(name)
        await gate.wait()
        if name == "broken":
            raise RuntimeError("API down")
        return await lookup(name)

    rs = RuntimeSet({"process": FakeRuntime("process")}, "process", slow_lookup, "n1")
    waiting = [asyncio.ensure_future(rs.handler_for(pod("process"))) for _ in range(20)]
    broken = [asyncio.ensure_future(rs.handler_for(pod("broken"))) for _ in range(3)]
    await asyncio.sleep(0)
    gate.set()
    assert await asyncio.gather(*waiting) == ["process"] * 20
    results = await asyncio.gather(*broken, return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    assert sorted(calls) == ["broken", "process"]
    with pytest.raises(RuntimeError):
        await rs.handler_for(pod("broken"))  # asked again, not served from a cache
    assert calls.count("broken") == 2
