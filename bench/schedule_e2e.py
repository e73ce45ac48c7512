"""End-to-end scheduling: the workload through a real API server.

A `corral server` child (SQLite store, controllers, scheduler) and a
`corral sim` child with the hollow nodes; this process creates the workload
as users would (a Deployment per templated app, bare pods for the small
plain web pods), then watches pods until every one is Running. Prints
pods_per_second (first create to last Running), p50/p99_ms (each pod's
creation to Running), each child's peak RSS and CPU use over the measured
window, and writes_per_pod: the write requests the server's audit log
records in that window, by client, divided by the pods (--profile DIR also
records py-spy profiles of the server and the sim). Together they tell
where the time went.

With --server-workers N > 1 the server is N + 1 processes (`corral server
--api-workers N`): the store's owner, which also runs the controllers and
the scheduler, and N API workers serving the port. Its CPU figures count
the whole process tree, and ``server_cpu_by_process`` splits them, the
owner first, which shows whether the owner or the workers saturate.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from _common import (
    CORRAL,
    CpuMeter,
    corral_child,
    cpu_seconds,
    emit,
    percentile,
    process_tree,
    rss_mb,
)
from schedule_workload import NAMESPACE, apps, template

from corral.client.api import ApiClient
from corral.client.resources import DEPLOYMENTS, NAMESPACES, NODES, PODS

E2E_TARGET_PODS_PER_S = 1000  # issue #5, end to end with 5,000 hollow nodes
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection"}
PY_SPY = str(Path(sys.executable).with_name("py-spy"))


def server_args(workers: int) -> list[str]:
    """Extra `corral server` arguments: none for one process, so the bench
    still runs against a server that predates --api-workers."""
    if workers < 1:
        raise ValueError(f"server workers: must be at least 1, got {workers}")
    return ["--api-workers", str(workers)] if workers > 1 else []


def process_names(pids: list[int]) -> dict[str, int]:
    """Names for the server's processes, owner first (``server``, then
    ``worker1``... by pid), as used for profiles and the CPU split."""
    if not pids:
        raise ValueError("pids: the server's process tree is empty")
    ordered = [pids[0], *sorted(pids[1:])]  # percent_by_process's order
    return {("server" if i == 0 else f"worker{i}"): pid for i, pid in enumerate(ordered)}


def cpu_by_process(percents: list[float], wall: float, pods: int) -> dict[str, dict[str, float]]:
    """Each server process's share over the window (``percent_by_process``
    order: owner first) as percent of a core and CPU ms per pod."""
    if pods < 1:
        raise ValueError(f"pods: must be at least 1, got {pods}")
    names = ["server" if i == 0 else f"worker{i}" for i in range(len(percents))]
    return {name: {"pct": pct, "ms_per_pod": round(pct / 100 * wall * 1000 / pods, 2)}
            for name, pct in zip(names, percents, strict=True)}


async def sample_cpu(pids: dict[str, int], series: dict[str, list[float]], every: float = 1.0) -> None:
    """Append each process's percent of a core over every ``every`` seconds
    to ``series`` until cancelled: an average of 60 % over the window may be
    a process pinned at 100 % through the creates and idle afterwards."""
    last = {name: cpu_seconds(pid) for name, pid in pids.items()}
    then = time.monotonic()
    while True:
        await asyncio.sleep(every)
        now = time.monotonic()
        for name, pid in pids.items():
            try:
                used = cpu_seconds(pid)
            except OSError:  # exited (a worker restarted): no figure for it
                continue
            series.setdefault(name, []).append(round(100 * (used - last[name]) / (now - then)))
            last[name] = used
        then = now


def runqueue_wait_seconds(pid: int) -> float:
    """Time a process's main thread (the event loop) has spent runnable but
    waiting for a CPU (second field of /proc/PID/schedstat, ns): what a
    machine short of cores costs it, which its CPU time does not show."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9


def busy_seconds(series: list[float], threshold: float = 90.0) -> int:
    """Samples (seconds) in which a process used at least ``threshold`` % of a core."""
    return sum(1 for pct in series if pct >= threshold)


def audit_logs(data_dir: Path) -> list[Path]:
    """The server's audit logs: the owner's ``audit.log`` (controllers and
    scheduler, over its local socket) and each API worker's
    ``audit.workerN.log`` (every client of the TCP port)."""
    return sorted(p for p in data_dir.glob("audit*.log") if p.is_file())


def peak_rss(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return rss_mb(pid)


async def create_workload(client: ApiClient, total: int, nodes: int, created: dict[str, float]) -> None:
    gate = asyncio.Semaphore(32)

    async def bare(name: str, tpl: dict[str, Any]) -> None:
        async with gate:
            created[name] = time.monotonic()
            await client.create(PODS, {"apiVersion": "v1", "kind": "Pod",
                                       "metadata": {"name": name, "namespace": NAMESPACE,
                                                    "labels": tpl["metadata"]["labels"]},
                                       "spec": tpl["spec"]})

    jobs = []
    for app, w, replicas in apps(total, nodes):
        tpl = template(w, app)
        if w.name == "web-s":
            jobs += [bare(f"{app}-{i}", tpl) for i in range(replicas)]
            continue
        dep = {"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": app, "namespace": NAMESPACE},
               "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": app}},
                        "template": tpl}}
        jobs.append(client.create(DEPLOYMENTS, dep))
    await asyncio.gather(*jobs)


async def run(args: argparse.Namespace, server: Any, sim: subprocess.Popen[bytes], sim_log: Path,
              meters: list[CpuMeter], profiler: Profiler) -> dict[str, Any]:
    total = args.e2e_pods or args.pods
    async with ApiClient(server.url, token=server.token(), ca_file=str(server.ca_file),
                         user_agent="bench-schedule", timeout=120) as client:
        await client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace",
                                         "metadata": {"name": NAMESPACE}})
        # The sim says when every node is registered; listing 5,000 nodes
        # every second instead would load the server being measured.
        while "hollow nodes ready" not in sim_log.read_text(errors="replace"):
            if sim.poll() is not None:  # else this loop would wait for ever
                tail = sim_log.read_text(errors="replace")[-2000:]
                raise SystemExit(f"corral sim exited with {sim.returncode}:\n{tail}")
            await asyncio.sleep(0.5)
        nodes = len((await client.list(NODES))["items"])
        if nodes < args.nodes:
            raise SystemExit(f"only {nodes}/{args.nodes} nodes registered")
        created: dict[str, float] = {}
        running: dict[str, float] = {}
        for meter in meters:
            meter.start()
        profiler.start()
        by_second: dict[str, list[float]] = {}
        watched = {**process_names(process_tree(server.pid)), "sim": sim.pid}
        sampler = asyncio.create_task(sample_cpu(watched, by_second))
        waited = {name: runqueue_wait_seconds(pid) for name, pid in watched.items()}
        t0, t0_wall = time.monotonic(), time.time()
        seen: dict[str, float] = {}
        bound: dict[str, float] = {}
        watcher = asyncio.create_task(watch_running(client, running, total, seen, bound))
        await create_workload(client, total, args.nodes, created)
        t_created = time.monotonic()
        try:
            await asyncio.wait_for(watcher, args.e2e_timeout)
        except TimeoutError:
            raise SystemExit(f"only {len(running)}/{total} pods Running after {args.e2e_timeout}s") from None
        t_end = max(running.values())
        # Whole process trees: a server of API workers is counted whole.
        wall = time.monotonic() - t0
        cpu = [meter.percent() for meter in meters]
        cpu_s = [meter.seconds() for meter in meters]
        by_process = meters[0].percent_by_process()
        sampler.cancel()
        runqueue = {name: round(100 * (runqueue_wait_seconds(pid) - waited[name]) / wall, 1)
                    for name, pid in watched.items()}
        profiler.stop()
        lat = [(running[k] - created.get(k, seen.get(k, t0))) * 1000 for k in running]
        stages = {"seen_to_bound_p50_ms": _p50([bound[k] - seen[k] for k in bound if k in seen]),
                  "bound_to_running_p50_ms": _p50([running[k] - bound[k] for k in running if k in bound]),
                  "last_seen_s": round(max(seen.values()) - t0, 1),
                  "last_bound_s": round(max(bound.values()) - t0, 1)}
        return {"stages": stages, "seconds": t_end - t0, "create_seconds": t_created - t0, "latencies": lat,
                "running": len(running), "cpu_pct": cpu, "cpu_s": cpu_s, "window": (t0_wall, t0_wall + t_end - t0),
                "cpu_by_process": cpu_by_process(by_process, wall, total), "cpu_by_second": by_second,
                "runqueue_wait_pct": runqueue}


async def watch_running(client: ApiClient, running: dict[str, float], total: int,
                        seen: dict[str, float], bound: dict[str, float]) -> None:
    """Time each pod's first sight, binding and Running, from one watch."""
    rv = None
    while len(running) < total:
        if rv is None:
            page = await client.list(PODS, NAMESPACE, limit=1)
            rv = page["metadata"]["resourceVersion"]
        async for type_, pod in client.watch(PODS, NAMESPACE, resource_version=rv, timeout_seconds=600):
            rv = pod.get("metadata", {}).get("resourceVersion") or rv
            if type_ not in ("ADDED", "MODIFIED"):
                continue
            name, now = pod["metadata"]["name"], time.monotonic()
            seen.setdefault(name, now)
            if (pod.get("spec") or {}).get("nodeName"):
                bound.setdefault(name, now)
            if (pod.get("status") or {}).get("phase") == "Running":
                running.setdefault(name, now)
                if len(running) >= total:
                    return


def _count_lines(path: Path, needle: str) -> int:
    with path.open("rb") as f:
        return sum(needle.encode() in line for line in f)


def _p50(seconds: list[float]) -> float | None:
    return round(percentile(seconds, 50) * 1000, 1) if seconds else None


def writes_in(audit_logs: list[Path], window: tuple[float, float]) -> Counter[str]:
    """Write requests the server answered within the window, by client and
    resource (from its audit logs, one per process): where each pod's
    writes come from."""
    counts: Counter[str] = Counter()
    start, end = (datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") for t in window)
    for audit_log in audit_logs:
        with audit_log.open("rb") as f:
            for line in f:
                event = orjson.loads(line)
                if event.get("verb") not in WRITE_VERBS or not start <= event["requestReceivedTimestamp"] <= end:
                    continue
                ref = event.get("objectRef") or {}
                what = "/".join(filter(None, (ref.get("resource"), ref.get("subresource"))))
                counts[f"{event['userAgent'].split('/')[0]} {event['verb']} {what}"] += 1
    return counts


class Profiler:
    """py-spy (raw folded stacks, one file per process) over the measured
    window only: ``start`` at the first create, ``stop`` at the last Running."""

    def __init__(self, out: Path | None, gil: bool = False, **pids: int) -> None:
        self.out, self.pids = out, pids
        # --gil samples only the thread holding the GIL: Python's CPU, not
        # time spent waiting on fsync, sockets or a busy machine's run queue.
        self.extra = ["--gil"] if gil else []
        self.spies: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        if self.out is None:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        self.spies = [subprocess.Popen([PY_SPY, "record", "--pid", str(pid), "--rate", "50", "--nonblocking",
                                        *self.extra, "-f", "raw", "-o", str(self.out / f"{name}.txt")],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                      for name, pid in self.pids.items()]

    def stop(self) -> None:
        for spy in self.spies:
            spy.send_signal(signal.SIGINT)
        for spy in self.spies:
            try:
                spy.wait(30)
            except subprocess.TimeoutExpired:
                spy.kill()
                spy.wait()
        self.spies = []


def end_to_end(args: argparse.Namespace) -> None:
    total = args.e2e_pods or args.pods
    workers = args.server_workers
    pod_watch = args.pod_watch
    with corral_child("server", *server_args(workers), ready_timeout=120, keep=args.keep) as server:
        sim = subprocess.Popen(
            [*CORRAL, "sim", "--nodes", str(args.nodes), "--server", server.url, "--token", server.token(),
             "--ca-file", str(server.ca_file), "--lease-period", str(args.lease_period),
             "--label", "disktype=ssd/3", "--pod-watch", pod_watch,
             *(["--node-token-file", str(server.data_dir / "tokens.csv")]
               if args.node_identity == "node" else [])],
            stdout=subprocess.DEVNULL, stderr=open(server.data_dir.parent / "sim.log", "wb"),
            start_new_session=True)
        try:
            meters = [CpuMeter(server.pid), CpuMeter(sim.pid), CpuMeter(os.getpid())]
            started = time.monotonic()
            # Every process of the server (owner first, then its API workers).
            profiler = Profiler(args.profile, args.profile_gil, **process_names(process_tree(server.pid)),
                                sim=sim.pid)
            try:
                result = asyncio.run(run(args, server, sim, server.data_dir.parent / "sim.log", meters, profiler))
            finally:
                profiler.stop()
            writes = writes_in(audit_logs(server.data_dir), result["window"])
            sim_stats = [line.rpartition("hollow nodes: ")[2] for line in
                         (server.data_dir.parent / "sim.log").read_text(errors="replace").splitlines()
                         if "hollow nodes: renewals=" in line][-1:]
            server_pct, sim_pct, bench_pct = result["cpu_pct"]
            params = {"mode": "end_to_end", "nodes": args.nodes, "pods": total, "server_workers": workers,
                      "pod_watch": pod_watch, "node_identity": args.node_identity,
                      "lease_period_s": args.lease_period, "running": result["running"],
                      "seconds": round(result["seconds"], 1),
                      "create_seconds": round(result["create_seconds"], 1),
                      "setup_seconds": round(time.monotonic() - started - result["seconds"], 1),
                      "server_cpu_pct": server_pct, "sim_cpu_pct": sim_pct, "client_cpu_pct": bench_pct,
                      # CPU per pod moves less with the machine's load than the rates do.
                      "server_cpu_ms_per_pod": round(result["cpu_s"][0] * 1000 / total, 2),
                      "sim_cpu_ms_per_pod": round(result["cpu_s"][1] * 1000 / total, 2),
                      # Server, sim and this client together, against what the
                      # issue's rate leaves per pod on every core of this machine.
                      "all_cpu_ms_per_pod": round(sum(result["cpu_s"]) * 1000 / total, 2),
                      "target_budget_ms_per_pod": round((os.cpu_count() or 1) * 1000 / E2E_TARGET_PODS_PER_S, 2),
                      **({"server_cpu_by_process": result["cpu_by_process"]} if workers > 1 else {}),
                      "sim": sim_stats[0] if sim_stats else "",
                      # Healthy-but-late nodes the node lifecycle controller declared dead.
                      "nodes_marked_unreachable": _count_lines(server.data_dir.parent / "corral.log",
                                                               "stopped renewing its lease")}
            emit("schedule", "pods_per_second", total / result["seconds"], "1/s", **params)
            emit("schedule", "p50_ms", percentile(result["latencies"], 50), "ms", **result["stages"], **params)
            emit("schedule", "p99_ms", percentile(result["latencies"], 99), "ms", **params)
            # Seconds of the window in which the store's owner (named "server")
            # used 90 % of a core or more, with every process's per-second series.
            series = result["cpu_by_second"]
            emit("schedule", "server_busy_seconds", busy_seconds(series.get("server", [])), "s",
                 threshold_pct=90, busy_seconds_by_process={n: busy_seconds(v) for n, v in series.items()},
                 # Percent of the window each main thread was runnable but had no core.
                 runqueue_wait_pct=result["runqueue_wait_pct"],
                 cpu_pct_by_second=series, mode="end_to_end", nodes=args.nodes, pods=total,
                 server_workers=workers, seconds=params["seconds"])
            for name, pid in process_names(process_tree(server.pid)).items():
                emit("schedule", "peak_rss_mb", peak_rss(pid), "MiB", process=name, **params)
            emit("schedule", "peak_rss_mb", peak_rss(sim.pid), "MiB", process="sim", **params)
            # Lease renewals depend on the window's length, not on the pods:
            # a run that outlasts the lease period pays a second wave of them.
            pod_writes = sum(n for what, n in writes.items() if not what.endswith(" leases"))
            emit("schedule", "writes_per_pod", sum(writes.values()) / total, "1/pod",
                 writes_per_second=round(sum(writes.values()) / result["seconds"], 1),
                 without_leases=round(pod_writes / total, 3),
                 by_client=dict(writes.most_common()), **params)
        finally:
            sim.terminate()
            try:
                sim.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(sim.pid, 9)
                sim.wait()


if __name__ == "__main__":
    sys.exit("run bench/schedule.py --mode end_to_end")
