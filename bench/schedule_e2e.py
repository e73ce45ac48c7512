"""End-to-end scheduling: the workload through a real API server.

A `corral server` child (SQLite store, controllers, scheduler) and a
`corral sim` child with the hollow nodes; this process creates the workload
as users would (a Deployment per templated app, bare pods for the small
plain web pods), then watches pods until every one is Running. Prints
pods_per_second (first create to last Running), p50/p99_ms (each pod's
creation to Running), and each child's peak RSS and CPU use, which tells
where the time went.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import CORRAL, CpuMeter, corral_child, emit, percentile, rss_mb
from schedule_workload import NAMESPACE, apps, template

from corral.client.api import ApiClient
from corral.client.resources import DEPLOYMENTS, NAMESPACES, NODES, PODS


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


async def run(args: argparse.Namespace, server: Any) -> dict[str, Any]:
    total = args.e2e_pods or args.pods
    async with ApiClient(server.url, token=server.token(), ca_file=str(server.ca_file),
                         user_agent="bench-schedule", timeout=120) as client:
        await client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace",
                                         "metadata": {"name": NAMESPACE}})
        while len((await client.list(NODES))["items"]) < args.nodes:
            await asyncio.sleep(1)
        created: dict[str, float] = {}
        running: dict[str, float] = {}
        t0 = time.monotonic()
        watcher = asyncio.create_task(watch_running(client, running, total))
        await create_workload(client, total, args.nodes, created)
        t_created = time.monotonic()
        try:
            await asyncio.wait_for(watcher, args.e2e_timeout)
        except TimeoutError:
            raise SystemExit(f"only {len(running)}/{total} pods Running after {args.e2e_timeout}s") from None
        t_end = max(running.values())
        lat = [(running[k] - created.get(k, t0)) * 1000 for k in running]
        return {"seconds": t_end - t0, "create_seconds": t_created - t0, "latencies": lat,
                "running": len(running)}


async def watch_running(client: ApiClient, running: dict[str, float], total: int) -> None:
    rv = None
    while len(running) < total:
        if rv is None:
            page = await client.list(PODS, NAMESPACE, limit=1)
            rv = page["metadata"]["resourceVersion"]
        async for type_, pod in client.watch(PODS, NAMESPACE, resource_version=rv, timeout_seconds=600):
            rv = pod.get("metadata", {}).get("resourceVersion") or rv
            if type_ in ("ADDED", "MODIFIED") and (pod.get("status") or {}).get("phase") == "Running":
                running.setdefault(pod["metadata"]["name"], time.monotonic())
                if len(running) >= total:
                    return


def end_to_end(args: argparse.Namespace) -> None:
    total = args.e2e_pods or args.pods
    with corral_child("server", ready_timeout=120) as server:
        sim = subprocess.Popen(
            [*CORRAL, "sim", "--nodes", str(args.nodes), "--server", server.url, "--token", server.token(),
             "--ca-file", str(server.ca_file), "--lease-interval", str(args.lease_interval),
             "--label", "disktype=ssd/3"],
            stdout=subprocess.DEVNULL, stderr=open(server.data_dir.parent / "sim.log", "wb"),
            start_new_session=True)
        try:
            server_cpu, sim_cpu = CpuMeter(server.pid), CpuMeter(sim.pid)
            started = time.monotonic()
            result = asyncio.run(run(args, server))
            server_cpu.start()  # (reset for the idle reading below is not needed)
            params = {"mode": "end_to_end", "nodes": args.nodes, "pods": total,
                      "lease_interval_s": args.lease_interval, "running": result["running"],
                      "create_seconds": round(result["create_seconds"], 1),
                      "setup_seconds": round(time.monotonic() - started - result["seconds"], 1)}
            emit("schedule", "pods_per_second", total / result["seconds"], "1/s", **params)
            emit("schedule", "p50_ms", percentile(result["latencies"], 50), "ms", **params)
            emit("schedule", "p99_ms", percentile(result["latencies"], 99), "ms", **params)
            emit("schedule", "peak_rss_mb", peak_rss(server.pid), "MiB", process="server", **params)
            emit("schedule", "peak_rss_mb", peak_rss(sim.pid), "MiB", process="sim", **params)
            del sim_cpu
        finally:
            sim.terminate()
            try:
                sim.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(sim.pid, 9)
                sim.wait()


if __name__ == "__main__":
    sys.exit("run bench/schedule.py --mode end_to_end")
