"""Both runtimes under a real agent and API server: limits, OOM, adoption
after an agent restart, bad specs. Docker tests use a real dockerd and a
busybox image made locally (tests/fixtures/dockerd.py)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from corral.agent.runtimes import RUNTIMES_ANNOTATION
from corral.client.errors import NotFoundError
from corral.client.resources import NODES, PODS
from fixtures.agent_node import NODE, Node, events_for, eventually, get_pod, main_status, node, pod
from fixtures.dockerd import Dockerd

RUNTIMES = ("process", "docker")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="limits need root (cgroups)")


def busy_pod(name: str, runtime: str, image: str, **spec: Any) -> dict[str, Any]:
    return pod(name, runtime, ["sh", "-c", "while :; do :; done"], image, **spec)


async def running(n: Node, name: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        p = await get_pod(n.client, name)
        return p if (p.get("status") or {}).get("phase") == "Running" else None

    return await eventually(probe, what=f"pod {name} Running")


def main_pid(n: Node, container_id: str) -> int:
    assert n.agent is not None
    handler, _, cid = container_id.partition("://")
    rt: Any = n.agent.runtime.runtimes[handler]
    if handler == "docker":
        return int(rt._api.inspect_container(cid)["State"]["Pid"])
    return int(json.loads((rt._root / cid / "started.json").read_text())["pid"])


def cpu_cgroup(pid: int, controller: str = "cpu") -> Path:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            base = Path("/sys/fs/cgroup") / controllers
            if not base.exists():
                base = Path("/sys/fs/cgroup/cpu")
            return base / path.lstrip("/")
    path = Path(f"/proc/{pid}/cgroup").read_text().split("0::", 1)[1].split()[0]
    return Path("/sys/fs/cgroup") / path.lstrip("/")


def cpu_usage_ns(cg: Path) -> int:
    if (cg / "cpuacct.usage").exists():
        return int((cg / "cpuacct.usage").read_text())
    stat = dict(line.split() for line in (cg / "cpu.stat").read_text().splitlines())
    return int(stat["usage_usec"]) * 1000


@pytest.mark.parametrize("runtime", RUNTIMES)
async def test_node_advertises_runtimes(tmp_path: Path, dockerd: Dockerd, runtime: str) -> None:
    async with node(tmp_path, dockerd.base_url) as n:
        meta = (await n.client.get(NODES, NODE))["metadata"]
        assert meta["annotations"][RUNTIMES_ANNOTATION] == "docker,process"
        await n.client.create(PODS, pod("hello", runtime, ["sh", "-c", "echo hi; sleep 30"],
                                        dockerd.image))
        status = main_status(await running(n, "hello"))
        assert status["containerID"].startswith(f"{runtime}://")
        body = await n.client.request_bytes("GET", PODS.path("default", "hello", "log"))
        assert body == b"hi\n"
        handle = next(iter(n.agent.workers.values())).handles["main"]
        rt: Any = n.agent.runtime.runtimes[runtime]
        plan = await rt.exec_plan(handle, ["sh", "-c", "hostname; echo $$"], tty=False)
        if runtime == "process" and not rt.namespaces:
            assert plan is None
        else:
            done = subprocess.run(plan.argv, env=plan.env, cwd=plan.cwd, capture_output=True,
                                  text=True, timeout=30)
            assert done.returncode == 0, done.stderr
            # In the pod's namespaces: its hostname (process) and a pod-local pid.
            if runtime == "process":
                assert done.stdout.split()[0] == "hello"
            assert int(done.stdout.split()[1]) < 100
        stats = await rt.stats(handle)
        if os.geteuid() == 0:
            assert stats is not None and stats.memory_bytes > 0 and stats.cpu_usage_ns >= 0


@needs_root
@pytest.mark.parametrize("runtime", RUNTIMES)
async def test_memory_limit_oom_kills(tmp_path: Path, dockerd: Dockerd, runtime: str) -> None:
    async with node(tmp_path, dockerd.base_url) as n:
        hog = pod("hog", runtime, ["sh", "-c", "x=a; while :; do x=$x$x; done"], dockerd.image,
                  restartPolicy="Never",
                  container={"resources": {"limits": {"memory": "32Mi"}}})
        await n.client.create(PODS, hog)

        async def terminated() -> dict[str, Any] | None:
            return main_status(await get_pod(n.client, "hog")).get("state", {}).get("terminated")

        term = await eventually(terminated, what="OOM kill")
        assert term["reason"] == "OOMKilled" and term["exitCode"] == 137
        assert (await get_pod(n.client, "hog"))["status"]["phase"] == "Failed"


@needs_root
@pytest.mark.parametrize("runtime", RUNTIMES)
async def test_cpu_limit_throttles(tmp_path: Path, dockerd: Dockerd, runtime: str) -> None:
    async with node(tmp_path, dockerd.base_url) as n:
        spin = busy_pod("spin", runtime, dockerd.image,
                        container={"resources": {"limits": {"cpu": "100m"}}})
        await n.client.create(PODS, spin)
        cid = main_status(await running(n, "spin"))["containerID"]
        pid = main_pid(n, cid)
        cg, acct = cpu_cgroup(pid), cpu_cgroup(pid, "cpuacct")
        assert (cg / "cpu.stat").exists(), cg
        before, t0 = cpu_usage_ns(acct), asyncio.get_running_loop().time()
        await asyncio.sleep(1.5)  # the measurement window, not coordination
        used = (cpu_usage_ns(acct) - before) / ((asyncio.get_running_loop().time() - t0) * 1e9)
        throttled = int(re.search(r"nr_throttled (\d+)", (cg / "cpu.stat").read_text())[1])
        assert throttled > 0
        assert used < 0.2, f"a 100m container used {used:.2f} cores"


@pytest.mark.parametrize("runtime", RUNTIMES)
async def test_agent_restart_adopts_running_pod(
    tmp_path: Path, dockerd: Dockerd, runtime: str
) -> None:
    script = "i=0; while :; do echo line $i; i=$((i+1)); sleep 0.1; done"
    async with node(tmp_path, dockerd.base_url) as n:
        await n.client.create(PODS, pod("keep", runtime, ["sh", "-c", script], dockerd.image))
        before = main_status(await running(n, "keep"))
        await n.stop()
        await asyncio.sleep(1.0)  # the agent's outage: lines keep coming meanwhile
        agent = await n.start()

        async def synced() -> bool:
            workers = list(agent.workers.values())
            return bool(workers) and "main" in workers[0].states

        await eventually(synced, what="adopted container synced")
        after = main_status(await get_pod(n.client, "keep"))
        assert after["containerID"] == before["containerID"]
        assert after["restartCount"] == 0 and "running" in after["state"]

        async def log_lines() -> list[int] | None:
            body = await n.client.request_bytes("GET", PODS.path("default", "keep", "log"))
            numbers = [int(line.split()[1]) for line in body.decode().splitlines()]
            return numbers if len(numbers) > 20 else None

        numbers = await eventually(log_lines, what="log lines across the restart")
        assert numbers == list(range(len(numbers))), "lines lost or duplicated"

        await n.client.delete(PODS, "keep", "default")

        async def gone() -> bool:
            try:
                await get_pod(n.client, "keep")
            except NotFoundError:
                return not [h for h in await agent.runtime.list() if h.pod_name == "keep"]
            return False

        await eventually(gone, what="pod and container gone")


async def waiting_reason(n: Node, name: str, *reasons: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        w = main_status(await get_pod(n.client, name)).get("state", {}).get("waiting") or {}
        return w if w.get("reason") in reasons else None

    return await eventually(probe, what=f"{name} waiting with {reasons}")


async def event_saying(n: Node, name: str, text: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        hits = [e for e in await events_for(n.client, name) if text in e.get("message", "")]
        return hits[0] if hits else None

    return await eventually(probe, what=f"event on {name} saying {text!r}")


async def test_bad_specs_get_reasons_and_events(tmp_path: Path, dockerd: Dockerd) -> None:
    async with node(tmp_path, dockerd.base_url) as n:
        await n.client.create(PODS, pod("nocmd", "process", None, "busybox"))
        await n.client.create(PODS, pod("norc", "nope", ["true"], dockerd.image))
        absent = "corral-test/absent:1"
        await n.client.create(PODS, pod("noimg", "docker", ["true"], absent))
        await n.client.create(PODS, pod("never", "docker", ["true"], absent,
                                        container={"imagePullPolicy": "Never"}))

        w = await waiting_reason(n, "nocmd", "CreateContainerConfigError")
        assert "set command" in w["message"]
        await event_saying(n, "nocmd", "set command")

        w = await waiting_reason(n, "norc", "CreateContainerConfigError")
        assert 'RuntimeClass "nope" not found' in w["message"]
        await event_saying(n, "norc", 'RuntimeClass "nope" not found')

        w = await waiting_reason(n, "noimg", "ErrImagePull", "ImagePullBackOff")
        assert absent in w["message"]
        await event_saying(n, "noimg", f'Failed to pull image "{absent}"')
        await waiting_reason(n, "never", "ErrImageNeverPull")

        # The agent is still fine: good pods run on both runtimes.
        for runtime in RUNTIMES:
            await n.client.create(PODS, pod(f"ok-{runtime}", runtime, ["sleep", "30"],
                                            dockerd.image))
            await running(n, f"ok-{runtime}")


@pytest.mark.parametrize("runtime", RUNTIMES)
async def test_containers_of_a_pod_deleted_while_the_agent_was_down_are_removed(
    tmp_path: Path, dockerd: Dockerd, runtime: str
) -> None:
    async with node(tmp_path, dockerd.base_url) as n:
        # PID 1 of a Docker container ignores SIGTERM unless it handles it.
        handles_term = ["sh", "-c", "trap 'exit 0' TERM; sleep 300 & wait"]
        await n.client.create(PODS, pod("gone", runtime, handles_term, dockerd.image))
        await running(n, "gone")
        await n.stop()
        await n.client.delete(PODS, "gone", "default", grace_period_seconds=0)
        agent = await n.start()

        async def removed() -> bool:
            return not [h for h in await agent.runtime.list() if h.pod_name == "gone"]

        await eventually(removed, what="orphaned container removed")


@needs_root
async def test_containers_of_a_process_pod_share_its_namespaces(
    tmp_path: Path, dockerd: Dockerd
) -> None:
    async with node(tmp_path, dockerd.base_url) as n:
        # $$$$: the agent expands $(VAR) in commands and turns $$ into $.
        both = pod("duo", "process", ["sh", "-c", "echo $$$$ > /tmp/a.pid; sleep 300"], "none")
        both["spec"]["containers"].append({
            "name": "side", "image": "none",
            "command": ["sh", "-c", "sleep 1; hostname; cat /tmp/a.pid; ps -o pid,args; "
                        "sleep 300"],
        })
        await n.client.create(PODS, both)
        await running(n, "duo")

        async def side_log() -> str | None:
            body = await n.client.request_bytes(
                "GET", PODS.path("default", "duo", "log") + "?container=side")
            text = body.decode()
            return text if "sleep 300" in text else None

        lines = (await eventually(side_log, what="side container's view")).splitlines()
        assert lines[0] == "duo"  # the pod's hostname
        main_pid = lines[1].strip()  # main's pid, read from the pod's shared private /tmp
        table = {ln.split(None, 1)[0]: ln for ln in lines[3:] if ln.strip()}
        assert main_pid in table and "sh -c echo" in table[main_pid]
        assert "1" in table  # the pod's init, and nothing of the host
        assert len(table) < 10
        assert not Path("/tmp/a.pid").exists() or Path("/tmp/a.pid").read_text().strip() != main_pid
