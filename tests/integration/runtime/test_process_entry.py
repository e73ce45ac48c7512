"""The shim steps into a container's cgroup and pod namespaces to spawn it,
then back out (corral.runtime.entry): real processes, cgroups, namespaces."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from corral.runtime import memfs
from corral.runtime.layout import containers_dir, sandbox_state_dirs
from corral.runtime.process import ProcessRuntime
from corral.runtime.protocol import ContainerHandle, LogPaths

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="cgroups and namespaces need root")


def pod(uid: str, **annotations: str) -> dict[str, Any]:
    return {"metadata": {"name": f"p-{uid}", "namespace": "default", "uid": uid,
                         "annotations": annotations}, "spec": {}}


@pytest.fixture
async def runtime(tmp_path: Path):
    rt = ProcessRuntime(tmp_path / "runtime", memory=True)
    if rt.cgroup_version is None or not rt.namespaces:
        pytest.skip(f"needs cgroups and namespaces: {rt.isolation}")
    started: list[tuple[dict[str, Any], ContainerHandle]] = []

    async def start(p: dict[str, Any], container: dict[str, Any], **kw: Any) -> ContainerHandle:
        logs = LogPaths(tmp_path / "logs" / p["metadata"]["uid"] / f"{container['name']}.log", 1 << 20)
        handle = await rt.start_container(p, container, logs, {}, **kw)
        started.append((p, handle))
        return handle

    yield rt, start
    for _, h in started:
        await rt.stop_container(h, 0)
        await rt.remove_container(h)
    for uid in {p["metadata"]["uid"] for p, _ in started}:
        await rt.remove_pod(uid)
    await rt.close()
    memfs.unmount_under(tmp_path)


async def until(predicate, what: str, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"{what}: not before the deadline"
        await asyncio.sleep(0.05)
    return value


def cdir(rt: ProcessRuntime, h: ContainerHandle) -> Path:
    return containers_dir(rt.state_dir) / h.id


def pid_of(rt: ProcessRuntime, h: ContainerHandle) -> int:
    return int(json.loads((cdir(rt, h) / "started.json").read_text())["pid"])


def shim_of(rt: ProcessRuntime, h: ContainerHandle) -> int:
    return int((cdir(rt, h) / "shim.pid").read_text().split()[0])


def procs(d: Path) -> set[int]:
    return {int(x) for x in (d / "cgroup.procs").read_text().split()}


def cgroup_lines(pid: int) -> str:
    return Path(f"/proc/{pid}/cgroup").read_text()


def ns_of(pid: int, name: str) -> str:
    return os.readlink(f"/proc/{pid}/ns/{name}")


def pod_init(rt: ProcessRuntime, uid: str) -> int:
    state = next(d for d in sandbox_state_dirs(rt.state_dir) if d.name == uid)
    return int(json.loads((state / "sandbox.json").read_text())["pid"])


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/status").read_text().split("PPid:")[1].split()[0])


async def test_container_is_born_in_its_cgroup_and_pod_namespaces_and_the_shim_steps_back(runtime):
    rt, start = runtime
    h = await start(pod("entry-ns"), {"name": "c", "command": ["sleep", "300"]})
    pid, shim, init = pid_of(rt, h), shim_of(rt, h), pod_init(rt, "entry-ns")
    assert parent_of(pid) == shim
    cg = rt.cgroup_of(h)
    assert cg is not None
    assert all(procs(d) == {pid} for d in cg.dirs)  # the container alone: the shim went back
    assert cgroup_lines(shim) == cgroup_lines(os.getpid())  # the launcher's, which are ours
    for name in ("mnt", "uts", "ipc"):
        assert ns_of(pid, name) == ns_of(init, name) != ns_of(shim, name), name
        assert ns_of(shim, name) == ns_of(os.getpid(), name), name
    assert ns_of(pid, "pid") == ns_of(init, "pid") != ns_of(os.getpid(), "pid")
    assert Path(f"/proc/{pid}/root/proc/1/cmdline").read_bytes().startswith(b"corral-pod-init")


FORKER = """
import os, time
while not os.path.exists("/tmp/go"):
    time.sleep(0.02)
forked = 0
for _ in range(6):
    try:
        if os.fork() == 0:
            time.sleep(300)
            os._exit(0)
        forked += 1
    except OSError as exc:
        print("refused:", exc.strerror, flush=True)
print("forked", forked, flush=True)
time.sleep(300)
"""


async def test_pids_limit_holds_for_the_container_alone(runtime):
    rt, start = runtime
    p = pod("entry-pids", **{"corral.dev/pids-limit": "3"})
    # The forks wait for the start to have returned (the shim is out by then);
    # while it is in, its slot is made up by pids.max + 1, so a fork of the
    # container could only be refused then, never exceed the limit.
    h = await start(p, {"name": "c", "command": ["python3", "-c", FORKER]})
    cg = rt.cgroup_of(h)
    assert cg is not None
    pids_dir = next(d for d in cg.dirs if (d / "pids.max").exists())
    assert (pids_dir / "pids.max").read_text().strip() == "3"  # the shim's extra slot is gone
    assert shim_of(rt, h) not in procs(pids_dir)
    (rt.state_dir / "pods" / "entry-pids" / "tmp" / "go").touch()
    await until(lambda: "forked" in log_of(h), "the forks")
    assert "forked 2" in log_of(h) and log_of(h).count("refused:") == 4
    assert len(procs(pids_dir)) == 3 and int((pids_dir / "pids.current").read_text()) == 3


def log_of(h: ContainerHandle) -> str:
    path = Path(h.log_path)
    return path.read_text() if path.exists() else ""


async def test_user_and_group_are_switched_in_the_child(runtime, tmp_path: Path):
    rt, start = runtime
    p = pod("entry-user")
    p["spec"]["securityContext"] = {"runAsUser": 4321, "runAsGroup": 4322}
    out = tmp_path / "logs" / "entry-user" / "c.log"
    h = await start(p, {"name": "c", "command": ["sh", "-c", "id -u; id -g; id -G; sleep 300"]})
    pid = pid_of(rt, h)
    status = Path(f"/proc/{pid}/status").read_text()
    uids = status.split("Uid:")[1].split()[:4]
    gids = status.split("Gid:")[1].split()[:4]
    groups = status.split("Groups:")[1].split("\n")[0].split()
    assert uids == ["4321"] * 4 and gids == ["4322"] * 4 and groups == []
    await until(lambda: out.exists() and out.read_text().count("\n") >= 3, "the id lines")
    lines = [line.split(" ", 3)[3] for line in out.read_text().splitlines()]
    assert lines[:3] == ["4321", "4322", "4322"]


def a_volume(rt: ProcessRuntime, tmp_path: Path) -> Path:
    if rt.rootfs_missing is not None:
        pytest.skip(f"no pod root: {rt.rootfs_missing}")
    vol = tmp_path / "vol"
    vol.mkdir()
    (vol / "hello").write_text("from the volume\n")
    return vol


def host_mount_points() -> list[str]:
    return sorted(line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines())


async def test_a_volume_is_mounted_in_the_containers_own_mount_namespace(runtime, tmp_path: Path):
    from corral.runtime.protocol import Mount

    rt, start = runtime
    vol = a_volume(rt, tmp_path)
    before = host_mount_points()
    h = await start(pod("entry-vol"), {"name": "c", "command": ["sleep", "300"]},
                    mounts=[Mount(host_path=vol, container_path="/data", read_only=True)])
    pid, shim = pid_of(rt, h), shim_of(rt, h)
    assert Path(f"/proc/{pid}/root/data/hello").read_text() == "from the volume\n"
    assert ns_of(shim, "mnt") == ns_of(os.getpid(), "mnt") != ns_of(pid, "mnt")
    assert host_mount_points() == before  # nothing of the container's mounts on the host


async def test_a_command_that_cannot_run_is_a_start_error(runtime, tmp_path: Path):
    from corral.runtime.protocol import StartError

    rt, start = runtime
    bad = tmp_path / "bin" / "not-a-program"
    bad.parent.mkdir()
    bad.write_bytes(b"\x00\x01 neither ELF nor a script\n")
    bad.chmod(0o755)
    p = pod("entry-bad")
    ok, wrong = {"name": "ok", "command": ["sleep", "300"]}, {"name": "bad", "command": [str(bad)]}
    p["spec"]["containers"] = [ok, wrong]  # the pod sees the program's directory
    await start(p, ok)  # the sandbox exists
    with pytest.raises(StartError, match="[Ee]xec format error"):
        await start(p, wrong)
    await start(p, {"name": "after", "command": ["sleep", "300"]})  # the sandbox is fine


async def test_a_volume_that_cannot_be_mounted_is_a_start_error_with_the_reason(runtime, tmp_path: Path):
    from corral.runtime.protocol import Mount, StartError

    rt, start = runtime
    vol = a_volume(rt, tmp_path)
    p = pod("entry-badvol")
    with pytest.raises(StartError, match='error mounting a volume at "/proc/corral-test/data"'):
        await start(p, {"name": "c", "command": ["sleep", "300"]},
                    mounts=[Mount(host_path=vol, container_path="/proc/corral-test/data")])
    await start(p, {"name": "ok", "command": ["sleep", "300"]})  # the pod's sandbox is unharmed
