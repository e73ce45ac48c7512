"""The process runtime against real processes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path

import pytest

from corral.runtime.process import NO_COMMAND, ProcessRuntime
from corral.runtime.protocol import ContainerState, LogPaths, StartError
from corral.runtime.shim import proc_start_ticks

POD = {"metadata": {"name": "web-abc", "namespace": "default", "uid": "uid-1"}}


def logs_for(tmp_path: Path, name: str = "c", max_bytes: int = 1 << 20) -> LogPaths:
    return LogPaths(tmp_path / "logs" / f"{name}.log", max_bytes)


async def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        await asyncio.sleep(interval)


def host_pid(pid: int, comm: str, same_ns_as: int) -> int:
    """The host's pid of a process a container reported: the same number
    without isolation, else the process of that pod's PID namespace whose
    innermost NSpid it is."""
    if not rt_isolated():
        return pid
    pod_ns = os.readlink(f"/proc/{same_ns_as}/ns/pid")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            status = Path(f"/proc/{entry}/status").read_text()
            if os.readlink(f"/proc/{entry}/ns/pid") != pod_ns:
                continue
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        nspids = fields.get("NSpid", "").split()
        if len(nspids) > 1 and int(nspids[-1]) == pid and fields["Name"].strip() == comm:
            return int(entry)
    raise AssertionError(f"no host process for pod pid {pid}")


def rt_isolated() -> bool:
    return os.geteuid() == 0


async def exited(rt: ProcessRuntime, handle) -> ContainerState | None:
    state = await rt.container_state(handle)
    return state if state.status == "exited" else None


@pytest.fixture
async def rt(tmp_path: Path):
    runtime = ProcessRuntime(tmp_path / "state")
    yield runtime
    for handle in await runtime.list():
        await runtime.remove_container(handle)
    await runtime.close()


async def test_runs_command_captures_logs_and_exit_code(rt: ProcessRuntime, tmp_path: Path):
    container = {
        "name": "c",
        "command": ["sh", "-c"],
        "args": ['echo "hello $GREETING from $HOSTNAME"; echo oops >&2; exit 3'],
    }
    logs = logs_for(tmp_path)
    handle = await rt.start_container(
        POD, container, logs, {"GREETING": "hi", "HOSTNAME": "web-abc"}
    )
    state = await wait_for(lambda: exited(rt, handle))
    assert state.exit_code == 3 and state.signal is None
    assert state.finished_at is not None and state.finished_at >= state.started_at
    lines = logs.path.read_text().splitlines()
    streams = {line.split(" ", 3)[1]: line.split(" ", 3)[3] for line in lines}
    assert streams == {"stdout": "hello hi from web-abc", "stderr": "oops"}
    assert all(line.split(" ")[2] == "F" for line in lines)
    assert handle.container_id.startswith("process://")


async def test_working_dir_is_used(rt: ProcessRuntime, tmp_path: Path):
    work = tmp_path / "work"
    work.mkdir()
    container = {"name": "c", "command": ["pwd"], "workingDir": str(work)}
    logs = logs_for(tmp_path)
    handle = await rt.start_container(POD, container, logs, {})
    state = await wait_for(lambda: exited(rt, handle))
    assert state.exit_code == 0
    assert logs.path.read_text().split(" ", 3)[3].strip() == str(work)


@pytest.mark.parametrize(
    ("container", "reason", "fragment"),
    [
        ({"name": "c", "image": "nginx"}, "CreateContainerConfigError", NO_COMMAND),
        (
            {"name": "c", "command": ["no-such-binary-xyz"]},
            "RunContainerError",
            "not found in $PATH",
        ),
        ({"name": "c", "command": ["/nonexistent/bin"]}, "RunContainerError", "no such executable"),
        (
            {"name": "c", "command": ["true"], "workingDir": "/no/such/dir"},
            "RunContainerError",
            "/no/such/dir",
        ),
    ],
)
async def test_bad_specs_raise_start_error(rt, tmp_path, container, reason, fragment):
    with pytest.raises(StartError) as info:
        await rt.start_container(POD, container, logs_for(tmp_path), {})
    assert info.value.reason == reason
    assert fragment in info.value.message
    assert await rt.list() == []


async def test_invalid_env_raises_start_error(rt, tmp_path):
    with pytest.raises(StartError, match="env"):
        await rt.start_container(
            POD, {"name": "c", "command": ["true"]}, logs_for(tmp_path), {"A=B": "x"}
        )


async def test_sigterm_then_sigkill_after_grace(rt: ProcessRuntime, tmp_path: Path):
    # Traps TERM and keeps running: only the SIGKILL after the grace ends it.
    script = 'trap "echo got-term" TERM; echo ready; while true; do sleep 0.05; done'
    logs = logs_for(tmp_path)
    handle = await rt.start_container(POD, {"name": "c", "command": ["sh", "-c", script]}, logs, {})
    await wait_for(lambda: _async(logs.path.exists() and "ready" in logs.path.read_text()))
    t0 = time.monotonic()
    await rt.stop_container(handle, grace_seconds=1.0)
    elapsed = time.monotonic() - t0
    state = await rt.container_state(handle)
    assert state.status == "exited"
    assert state.signal == signal.SIGKILL and state.exit_code == 137
    assert 0.9 <= elapsed < 5.0
    assert "got-term" in logs.path.read_text()


async def test_sigterm_reaches_children_and_ends_quickly(rt: ProcessRuntime, tmp_path: Path):
    logs = logs_for(tmp_path)
    script = "sleep 1000 & echo child=$!; wait"
    handle = await rt.start_container(POD, {"name": "c", "command": ["sh", "-c", script]}, logs, {})
    await wait_for(lambda: _async(logs.path.exists() and "child=" in logs.path.read_text()))
    main = json.loads((rt.state_dir / "containers" / handle.id / "started.json").read_text())
    child_in_pod = int(logs.path.read_text().split("child=")[1].split()[0])
    child = host_pid(child_in_pod, "sleep", same_ns_as=main["pid"])
    t0 = time.monotonic()
    await rt.stop_container(handle, grace_seconds=10.0)
    assert time.monotonic() - t0 < 5.0
    state = await rt.container_state(handle)
    assert state.status == "exited" and state.signal == signal.SIGTERM
    await wait_for(lambda: _async(proc_start_ticks(child) is None or _zombie_or_gone(child)))


async def test_adoption_by_a_new_runtime_object(tmp_path: Path):
    first = ProcessRuntime(tmp_path / "state")
    logs = logs_for(tmp_path)
    handle = await first.start_container(
        POD, {"name": "c", "command": ["sh", "-c", "echo up; sleep 1000"]}, logs, {}, attempt=2
    )
    await first.close()
    second = ProcessRuntime(tmp_path / "state")
    try:
        (adopted,) = await second.list()
        assert adopted == handle and adopted.attempt == 2
        assert (await second.container_state(adopted)).status == "running"
        await second.stop_container(adopted, 5.0)
        state = await wait_for(lambda: exited(second, adopted))
        assert state.signal == signal.SIGTERM
        await second.remove_container(adopted)
        assert await second.list() == []
    finally:
        for h in await second.list():
            await second.remove_container(h)


async def test_log_rotation_keeps_one_generation(rt: ProcessRuntime, tmp_path: Path):
    logs = logs_for(tmp_path, max_bytes=4096)
    script = 'i=0; while [ $i -lt 400 ]; do echo "line $i"; i=$((i+1)); done'
    handle = await rt.start_container(POD, {"name": "c", "command": ["sh", "-c", script]}, logs, {})
    await wait_for(lambda: exited(rt, handle))
    assert logs.path.stat().st_size <= 4096
    assert logs.rotated.exists() and logs.rotated.stat().st_size <= 4096
    assert logs.path.read_text().splitlines()[-1].endswith("line 399")


async def test_no_zombies_left(rt: ProcessRuntime, tmp_path: Path):
    handle = await rt.start_container(
        POD, {"name": "c", "command": ["true"]}, logs_for(tmp_path), {}
    )
    await wait_for(lambda: exited(rt, handle))

    async def no_zombie_children():
        await asyncio.sleep(0)
        return not [p for p in _children(os.getpid()) if _zombie_or_gone(p)]

    await wait_for(no_zombie_children)


async def test_supervisors_are_single_forks_of_the_launcher_and_reaped(rt: ProcessRuntime, tmp_path: Path):
    handle = await rt.start_container(
        POD, {"name": "c", "command": ["sleep", "30"]}, logs_for(tmp_path), {}
    )
    assert rt._launcher is not None
    launcher = rt._launcher.pid
    shim = int((rt.state_dir / "containers" / handle.id / "shim.pid").read_text().split()[0])
    assert shim in _children(launcher)  # no intermediate process
    await rt.stop_container(handle, 0)
    await wait_for(lambda: exited(rt, handle))

    async def reaped():
        await asyncio.sleep(0)
        return _zombie_or_gone(shim) and not _children(launcher)

    await wait_for(reaped)
    assert not Path(f"/proc/{shim}").exists()  # not even a zombie


def _children(pid: int) -> list[int]:
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                raw = Path(f"/proc/{entry}/stat").read_bytes()
            except OSError:
                continue
            if int(raw[raw.rindex(b")") + 2 :].split()[1]) == pid:
                kids.append(int(entry))
    return kids


def _zombie_or_gone(pid: int) -> bool:
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return True
    return raw[raw.rindex(b")") + 2 : raw.rindex(b")") + 3] == b"Z"


async def _async(value):
    return value


def _wakeups(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("voluntary_ctxt_switches:"):
            return int(line.split()[1])
    raise AssertionError(f"no context switch count for {pid}")


async def test_an_idle_supervisor_sleeps_and_still_sees_the_exit(rt: ProcessRuntime, tmp_path: Path):
    """Told of the exit by a pidfd, not by polling: no wake-ups while the
    container is quiet, and the exit is still recorded at once even though
    a child of the container keeps its stdout open."""
    logs = logs_for(tmp_path)
    script = "echo ready; sleep 1.5; sleep 1000 & exit 3"
    handle = await rt.start_container(POD, {"name": "c", "command": ["sh", "-c", script]}, logs, {})
    await wait_for(lambda: _async(logs.path.exists() and "ready" in logs.path.read_text()))
    cdir = rt.state_dir / "containers" / handle.id
    shim = int((cdir / "shim.pid").read_text().split()[0])
    before = _wakeups(shim)
    await asyncio.sleep(1.0)
    assert _wakeups(shim) - before <= 1  # polling woke it five times a second
    state = await wait_for(lambda: exited(rt, handle), timeout=10.0)
    assert state.exit_code == 3


async def test_warm_up_starts_the_launcher_before_the_first_container(rt: ProcessRuntime, tmp_path: Path):
    await rt.warm_up()
    assert rt._launcher is not None and rt._launcher.returncode is None
    launcher = rt._launcher.pid
    handle = await rt.start_container(POD, {"name": "c", "command": ["sleep", "30"]}, logs_for(tmp_path), {})
    shim = int((rt.state_dir / "containers" / handle.id / "shim.pid").read_text().split()[0])
    assert rt._launcher.pid == launcher and shim in _children(launcher)  # the warm one served it
    await rt.stop_container(handle, 0)


@pytest.mark.skipif(not rt_isolated(), reason="pod namespaces need root")
async def test_the_pod_init_is_pid_1_forked_by_the_first_supervisor(rt: ProcessRuntime, tmp_path: Path):
    handle = await rt.start_container(POD, {"name": "c", "command": ["sleep", "30"]}, logs_for(tmp_path), {})
    shim = int((rt.state_dir / "containers" / handle.id / "shim.pid").read_text().split()[0])
    sandbox = json.loads((rt._pod_state / "uid-1" / "sandbox.json").read_text())
    init = int(sandbox["pid"])
    assert _children(shim).count(init) == 1  # one fork: no intermediate process
    status = Path(f"/proc/{init}/status").read_text()
    nspid = next(line.split()[1:] for line in status.splitlines() if line.startswith("NSpid:"))
    assert nspid[-1] == "1"  # PID 1 of the pod's own PID namespace
    assert os.readlink(f"/proc/{init}/ns/pid") != os.readlink("/proc/self/ns/pid")
    # The supervisor's own children are born in the pod's namespace (the container).
    container = next(p for p in _children(shim) if p != init)
    assert os.readlink(f"/proc/{container}/ns/pid") == os.readlink(f"/proc/{init}/ns/pid")
    await rt.stop_container(handle, 0)


@pytest.mark.skipif(not rt_isolated(), reason="pod namespaces need root")
def test_making_a_sandbox_leaves_the_callers_pid_namespace_for_children(tmp_path: Path):
    from corral.runtime.init import ensure_sandbox

    before = os.readlink("/proc/self/ns/pid_for_children")
    init = ensure_sandbox(tmp_path / "pod", "h", [], state_dir=tmp_path / "state")
    try:
        assert os.readlink("/proc/self/ns/pid_for_children") == before
        assert os.readlink(f"/proc/{init}/ns/pid") != before
    finally:
        os.kill(init, signal.SIGKILL)
        os.waitpid(init, 0)
