"""The process runtime alone: N pod sandboxes started at once, no API.

    .venv/bin/python bench/runtime_start.py [--pods 100] [--concurrency 32]
        [--rounds 1] [--no-floor]

``bench/startup.py`` times a pod from its create to Running through a real
``corral up``; this isolates what the node's runtime costs per pod: the
agent's side of :meth:`ProcessRuntime.start_container` (spec, state files,
the launcher round trip) and everything it sets off (the supervisor fork,
the pod's init with its namespaces and overlay root, the cgroup, the
container's fork and exec). ``--concurrency`` is the agent's sync slots.

CPU is read from a cgroup that holds this process and every process it
starts, so short-lived forks and the kernel's work for them count (the
per-process counters of ``startup.py`` miss the container's own fork and
exec): cgroup v1's ``cpuacct`` hierarchy, which the runtime leaves alone.
Without it (a v2-only host) the CPU lines are omitted.

The same run starts N sandboxes of the same namespaces with util-linux's
``unshare --pid --mount --uts --ipc --fork --mount-proc sleep`` (C, no
supervisor, no cgroup, no overlay root): a floor for what the kernel needs,
to compare against. Needs root (namespaces); prints JSON lines.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
from _common import CgroupCpu, emit, percentile  # noqa: E402

# A start imports the pod-network module (and aiohttp) on first use. The
# agent has them loaded long before; here that import fell inside the first
# round's CPU window (this process is measured too): ~10 ms per pod.
import corral.net.podnet  # noqa: E402, F401
from corral.runtime import memfs  # noqa: E402
from corral.runtime.process import ProcessRuntime  # noqa: E402
from corral.runtime.protocol import ContainerHandle, LogPaths  # noqa: E402

BENCH = "runtime_start"
def emit_cpu(before: tuple[float, float, float] | None, after: tuple[float, float, float] | None,
             metric: str, n: int, **params: Any) -> None:
    if before is None or after is None:
        return
    total, user, system = (a - b for a, b in zip(after, before, strict=True))
    emit(BENCH, metric, total * 1000 / n, "ms", user_ms=round(user * 1000 / n, 2),
         system_ms=round(system * 1000 / n, 2), **params)


def pod(i: int) -> dict[str, Any]:
    return {
        "metadata": {"name": f"bench-{i}", "namespace": "default", "uid": str(uuid.uuid4())},
        "spec": {"containers": [{"name": "main", "command": ["sleep", "3600"]}]},
    }


async def runtime_round(base: Path, n: int, concurrency: int, cpu: CgroupCpu, params: dict[str, Any]) -> None:
    runtime = ProcessRuntime(base / "runtime", memory=True)
    # Trees before warm_up started the launcher on the first start: outside the measurement, here.
    await (getattr(runtime, "warm_up", None) or runtime._start_launcher)()
    slots = asyncio.Semaphore(concurrency)
    handles: list[ContainerHandle] = []
    took: list[float] = []

    async def start(p: dict[str, Any]) -> None:
        uid = p["metadata"]["uid"]
        logs = LogPaths(base / "logs" / uid / "main" / "0.log", 10 << 20)
        async with slots:
            t0 = time.monotonic()
            handles.append(await runtime.start_container(p, p["spec"]["containers"][0], logs,
                                                         {"PATH": "/usr/bin:/bin"}))
            took.append((time.monotonic() - t0) * 1000)

    pods = [pod(i) for i in range(n)]
    before, t0 = cpu.read(), time.monotonic()
    try:
        await asyncio.gather(*(start(p) for p in pods))
        wall = time.monotonic() - t0
        after = cpu.read(p["metadata"]["uid"] for p in pods)
        emit(BENCH, "all_started_s", wall, "s", **params)
        emit(BENCH, "start_p50_ms", percentile(took, 50), "ms", **params)
        emit(BENCH, "start_p99_ms", percentile(took, 99), "ms", **params)
        emit_cpu(before, after, "cpu_ms_per_pod", n, **params)
    finally:
        await asyncio.gather(*(runtime.stop_container(h, 0) for h in handles))
        for h in handles:
            await runtime.remove_container(h)
        for p in pods:
            await runtime.remove_pod(p["metadata"]["uid"])
        await runtime.close()


async def floor_round(n: int, concurrency: int, cpu: CgroupCpu, params: dict[str, Any]) -> None:
    unshare = shutil.which("unshare")
    if unshare is None:
        print("# no unshare(1): no floor", file=sys.stderr)
        return
    argv = [unshare, "--pid", "--mount", "--uts", "--ipc", "--fork", "--kill-child", "--mount-proc",
            "sleep", "3600"]
    slots = asyncio.Semaphore(concurrency)
    procs: list[asyncio.subprocess.Process] = []

    async def start() -> None:
        async with slots:
            procs.append(await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.DEVNULL))

    before, t0 = cpu.read(), time.monotonic()
    try:
        await asyncio.gather(*(start() for _ in range(n)))
        # Started means the sleep runs in its namespaces: unshare forks it last.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and sum(_sleeping_child(p.pid) for p in procs) < n:
            await asyncio.sleep(0.002)
        wall = time.monotonic() - t0
        after = cpu.read()
        emit(BENCH, "floor_all_started_s", wall, "s", **params)
        emit_cpu(before, after, "floor_cpu_ms_per_pod", n, **params)
    finally:
        for p in procs:
            p.kill()  # --kill-child: the sleep goes with its unshare
        await asyncio.gather(*(p.wait() for p in procs))


def _sleeping_child(pid: int) -> bool:
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                if Path(f"/proc/{child}/comm").read_text().strip() == "sleep":
                    return True
    except OSError:
        pass
    return False


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pods", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--no-floor", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("# not root: pods get no namespaces or cgroups here", file=sys.stderr)
    cpu = CgroupCpu("runtime-start")
    cpu.add(os.getpid())
    if cpu.path is None:
        print("# no cgroup v1 cpuacct hierarchy: CPU lines omitted", file=sys.stderr)
    base = Path(tempfile.mkdtemp(prefix="corral-runtime-bench-"))
    params = {"pods": args.pods, "concurrency": args.concurrency}
    try:
        for _ in range(args.rounds):
            await runtime_round(base, args.pods, args.concurrency, cpu, {"runtime": "process", **params})
            if not args.no_floor:
                await floor_round(args.pods, args.concurrency, cpu, {"runtime": "unshare(1)", **params})
    finally:
        memfs.unmount_under(base)
        shutil.rmtree(base, ignore_errors=True)
        cpu.close()


if __name__ == "__main__":
    asyncio.run(main())
