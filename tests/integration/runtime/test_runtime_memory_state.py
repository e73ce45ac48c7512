"""The process runtime's state in a tmpfs (corral.runtime.memfs), with real
mounts and real processes: adoption by a new runtime, a reboot, cleanup."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path

import pytest

from corral.runtime import memfs
from corral.runtime.layout import containers_dir, run_dir, sandbox_state_dirs
from corral.runtime.process import ProcessRuntime
from corral.runtime.protocol import LogPaths

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")

POD = {"metadata": {"name": "mem", "namespace": "default", "uid": "uid-mem"}}
CONTAINER = {"name": "c", "command": ["sleep", "1000"]}


@pytest.fixture
def state(tmp_path: Path):
    yield tmp_path / "runtime"
    memfs.unmount_under(tmp_path)  # a failed test must not leak its mount


async def until(predicate, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while not (value := await predicate()):
        assert time.monotonic() < deadline, "condition not met before the deadline"
        await asyncio.sleep(0.05)
    return value


def tmpfs_mounts_at(path: Path) -> int:
    where = os.path.realpath(path)
    return sum(1 for e in memfs.mounts() if e.mount_point == where and e.fstype == "tmpfs")


async def start(rt: ProcessRuntime, tmp: Path):
    handle = await rt.start_container(POD, CONTAINER, LogPaths(tmp / "logs" / "c.log", 1 << 20), {})

    async def running() -> bool:
        return (await rt.container_state(handle)).status == "running"

    await until(running)
    return handle


async def test_state_lives_in_a_tmpfs_and_a_new_runtime_adopts_it(state: Path, tmp_path: Path):
    rt = ProcessRuntime(state, memory=True)
    assert rt.memory.in_memory and tmpfs_mounts_at(run_dir(state)) == 1
    handle = await start(rt, tmp_path)
    cdir = containers_dir(state) / handle.id
    assert memfs.mounted_at(run_dir(state)).fstype == "tmpfs"
    assert (cdir / "spec.json").exists() and os.statvfs(cdir).f_fsid == os.statvfs(run_dir(state)).f_fsid
    # the old path still leads there (the fencing watchdog reads it)
    assert (state / "containers" / handle.id / "meta.json").exists()
    if rt.namespaces:
        assert [d.name for d in sandbox_state_dirs(state)] == ["uid-mem"]
        assert (state / "pods" / "uid-mem" / "tmp").is_dir()  # what the pod writes: on disk
        assert not (state / "pods" / "uid-mem" / "sandbox.json").exists()
    await rt.close()
    assert tmpfs_mounts_at(run_dir(state)) == 1  # a container is left: the state stays

    again = ProcessRuntime(state, memory=True)  # the agent restarted
    assert again.memory.in_memory and tmpfs_mounts_at(run_dir(state)) == 1  # found, not mounted twice
    assert [h.id for h in await again.list()] == [handle.id]
    assert (await again.container_state(handle)).status == "running"
    second = await start(again, tmp_path)  # joins the adopted pod's sandbox
    if again.namespaces:
        pid = json.loads((containers_dir(state) / second.id / "started.json").read_text())["pid"]
        first_pid = json.loads((cdir / "started.json").read_text())["pid"]
        assert os.readlink(f"/proc/{pid}/ns/pid") == os.readlink(f"/proc/{first_pid}/ns/pid")
    for h in (handle, second):
        await again.remove_container(h)
    assert not (state / "pods" / "uid-mem").exists() and not sandbox_state_dirs(state)
    await again.close()
    assert tmpfs_mounts_at(run_dir(state)) == 0 and memfs.ours_under(tmp_path) == []


async def test_after_a_reboot_the_containers_are_gone_not_broken(state: Path, tmp_path: Path):
    rt = ProcessRuntime(state, memory=True)
    handle = await start(rt, tmp_path)
    cdir = containers_dir(state) / handle.id
    pids = [json.loads((cdir / "started.json").read_text())["pid"],
            int((cdir / "shim.pid").read_text().split()[0])] if (cdir / "shim.pid").exists() else [
        json.loads((cdir / "started.json").read_text())["pid"]]
    sandboxes = [json.loads((d / "sandbox.json").read_text())["pid"] for d in sandbox_state_dirs(state)]
    await rt.close()
    # The machine goes down: every process and the memory with it.
    for pid in [*pids, *sandboxes]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert memfs.unmount(run_dir(state))

    after = ProcessRuntime(state, memory=True)
    assert after.memory.in_memory
    assert await after.list() == []
    fresh = await start(after, tmp_path)  # the same pod starts again over its old disk dir
    assert [h.id for h in await after.list()] == [fresh.id]
    await after.remove_container(fresh)
    await after.close()
    assert memfs.ours_under(tmp_path) == []


async def test_containers_of_the_old_layout_move_into_memory(state: Path, tmp_path: Path):
    old = ProcessRuntime(state)  # as an older agent left it: state_dir/containers a directory
    handle = await start(old, tmp_path)
    await old.close()
    moved = containers_dir(state)
    os.rename(moved, state / "containers.tmp")
    os.unlink(state / "containers")
    os.rename(state / "containers.tmp", state / "containers")

    rt = ProcessRuntime(state, memory=True)
    assert (state / "containers").is_symlink() and (moved / handle.id / "meta.json").exists()
    assert (await rt.container_state(handle)).status == "running"
    await rt.remove_container(handle)
    await rt.close()
    assert memfs.ours_under(tmp_path) == []


async def test_a_tmpfs_mounted_there_by_someone_else_is_used_but_left_mounted(state: Path):
    from corral.runtime import namespaces as ns

    run_dir(state).mkdir(parents=True)
    ns.mount("someone-else", str(run_dir(state)), "tmpfs", 0, "size=1m")
    try:
        rt = ProcessRuntime(state, memory=True)
        assert rt.memory.in_memory
        await rt.close()
        assert memfs.mounted_at(run_dir(state)).source == "someone-else"
    finally:
        memfs.unmount(run_dir(state))


async def test_a_node_that_cannot_have_its_default_runtime_leaves_no_mount(tmp_path: Path):
    from corral.agent.runtimes import build_runtimes

    with pytest.raises(ValueError, match="default runtime docker"):
        await build_runtimes(tmp_path / "agent", "docker", docker_host=f"unix://{tmp_path}/no.sock")
    assert memfs.ours_under(tmp_path) == []
