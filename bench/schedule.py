"""Scheduler benchmarks. Prints one JSON object per figure.

    .venv/bin/python bench/schedule.py --mode algorithm   [--nodes 5000] [--pods 150000]
    .venv/bin/python bench/schedule.py --mode quality     [--nodes 5000] [--pods 150000]
    .venv/bin/python bench/schedule.py --mode end_to_end  [--nodes 5000] [--pods 150000]
                                                          [--server-workers 1]

algorithm: the scheduling core alone on one core (no API): the workload of
bench/schedule_workload.py is fed in queue batches; pods_per_second is pods
decided over wall time, p50/p99_ms the time from a pod's batch being taken
from the queue to its decision, peak_rss_mb this process's peak.

quality: binpack on plain pods against a first-fit-decreasing bound
(binpack_excess_pct: extra nodes used, in percent), and the spread
strategy's max/min pods per node (spread_max_min_ratio) on the full mix.

end_to_end: a real `corral server` (SQLite) child, `corral sim` hollow
nodes in another child, and the workload created through the API as users
would (Deployments for the templated apps plus plain pods); measured from
the first create to the last pod Running (see bench/schedule_e2e.py).
--server-workers N > 1 runs `corral server --api-workers N` (the store's
owner with controllers and scheduler, plus N API worker processes) and
splits the server's CPU by process.
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, percentile  # noqa: E402
from schedule_workload import node_object, pods  # noqa: E402

from corral.scheduler.core import SchedulingCore  # noqa: E402
from corral.scheduler.profile import Profile  # noqa: E402

BATCH = 256


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_core(nodes: int, strategy: str, seed: int = 1) -> SchedulingCore:
    core = SchedulingCore([Profile(strategy=strategy)], random.Random(seed))
    for i in range(nodes):
        core.state.set_node(node_object(i))
    return core


def run_algorithm(core: SchedulingCore, workload: list[dict]) -> tuple[float, list[float], int]:
    """(seconds, per-pod latency ms, unscheduled)."""
    latencies: list[float] = []
    failed = 0
    core.cpu_seconds = time.process_time()  # type: ignore[attr-defined]
    start = time.perf_counter()
    for i in range(0, len(workload), BATCH):
        batch = workload[i: i + BATCH]
        t0 = time.perf_counter()
        decisions = core.schedule(batch)
        ms = (time.perf_counter() - t0) * 1000
        latencies.extend([ms] * len(batch))
        failed += sum(1 for d in decisions if d.node is None)
    core.cpu_seconds = time.process_time() - core.cpu_seconds  # type: ignore[attr-defined]
    return time.perf_counter() - start, latencies, failed


def violations(core: SchedulingCore) -> int:
    """Placements breaking the workload's own rules: two anti-affine
    replicas on one node, or a spread app's zones more than maxSkew apart."""
    per_node: dict[tuple[str, int], int] = {}
    per_zone: dict[str, dict[str, int]] = {}
    zones = core.state.labels.column("topology.kubernetes.io/zone")
    bad = 0
    for placed in core.state.pods.values():
        app = placed.cls.labels.get("app", "")
        if placed.cls.affinity.get("podAntiAffinity"):
            n = per_node[(app, placed.idx)] = per_node.get((app, placed.idx), 0) + 1
            bad += n > 1
        if placed.cls.spec.get("topologySpreadConstraints") and zones is not None:
            zone = zones.values[zones.ids[placed.idx]]
            counts = per_zone.setdefault(app, {})
            counts[zone] = counts.get(zone, 0) + 1
    for counts in per_zone.values():
        values = [counts.get(z, 0) for z in zones.values] if zones is not None else []
        bad += max(values) - min(values) > 1
    return bad


def algorithm(args: argparse.Namespace) -> None:
    workload = pods(args.pods, nodes=args.nodes)
    core = make_core(args.nodes, "spread")
    seconds, lat, failed = run_algorithm(core, workload)
    params = {"mode": "algorithm", "nodes": args.nodes, "pods": args.pods, "strategy": "spread",
              "unscheduled": failed, "violations": violations(core), "batch": BATCH,
              "wall_seconds": round(seconds, 2), "cpu_seconds": round(core.cpu_seconds, 2)}  # type: ignore[attr-defined]
    emit("schedule", "pods_per_second", args.pods / seconds, "1/s", **params)
    emit("schedule", "p50_ms", percentile(lat, 50), "ms", **params)
    emit("schedule", "p99_ms", percentile(lat, 99), "ms", **params)
    emit("schedule", "peak_rss_mb", peak_rss_mb(), "MiB", **params)
    per_node = core.state.req[core.state.resources["pods"], : core.state.size]
    emit("schedule", "spread_max_min_ratio", float(per_node.max()) / max(1, float(per_node.min())), "ratio",
         **params)


def ffd_nodes(workload: list[dict], core: SchedulingCore) -> int:
    """Nodes a first-fit-decreasing packing of the same pods needs (cpu,
    memory and pod count, vectorised first fit over identical empty nodes)."""
    state = core.state
    cpu_row, mem_row, pod_row = (state.resources[r] for r in ("cpu", "memory", "pods"))
    reqs = []
    for p in workload:
        cls = core.classes.of(p)
        reqs.append((cls.requests.get("cpu", 0), cls.requests.get("memory", 0)))
    reqs.sort(reverse=True)
    n = state.size
    free_cpu = state.alloc[cpu_row, :n].copy()
    free_mem = state.alloc[mem_row, :n].copy()
    free_pods = state.alloc[pod_row, :n].copy()
    used = 0
    for cpu, mem in reqs:
        fits = (free_cpu >= cpu) & (free_mem >= mem) & (free_pods >= 1)
        idx = int(np.argmax(fits))
        free_cpu[idx] -= cpu
        free_mem[idx] -= mem
        free_pods[idx] -= 1
        used = max(used, idx + 1)
    return used


def volume_bound(workload: list[dict], core: SchedulingCore) -> int:
    """No packing can use fewer nodes than total demand over one node's size."""
    state = core.state
    need = {"cpu": 0, "memory": 0}
    for p in workload:
        cls = core.classes.of(p)
        for r in need:
            need[r] += cls.requests.get(r, 0)
    per = {r: int(state.alloc[state.resources[r], 0]) for r in ("cpu", "memory", "pods")}
    return max(-(-need["cpu"] // per["cpu"]), -(-need["memory"] // per["memory"]),
               -(-len(workload) // per["pods"]))


def quality(args: argparse.Namespace) -> None:
    plain = [p for p in pods(args.pods, nodes=args.nodes) if not p["spec"].get("affinity")
             and not p["spec"].get("topologySpreadConstraints") and not p["spec"].get("nodeSelector")]
    core = make_core(args.nodes, "binpack")
    seconds, _, failed = run_algorithm(core, plain)
    pods_row = core.state.req[core.state.resources["pods"], : core.state.size]
    used = int((pods_row > 0).sum())
    bound = ffd_nodes(plain, make_core(args.nodes, "binpack"))
    volume = volume_bound(plain, core)
    params = {"mode": "algorithm", "nodes": args.nodes, "pods": len(plain), "strategy": "binpack",
              "nodes_used": used, "ffd_nodes": bound, "volume_bound_nodes": volume, "unscheduled": failed}
    emit("schedule", "binpack_excess_pct", (used - bound) * 100 / bound, "%", **params)
    emit("schedule", "pods_per_second", len(plain) / seconds, "1/s", **params)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=("algorithm", "quality", "end_to_end", "all"), default="all")
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--pods", type=int, default=150_000)
    parser.add_argument("--e2e-pods", type=int, default=None, help="pods for end_to_end (default --pods)")
    parser.add_argument("--lease-period", "--lease-interval", dest="lease_period", type=float, default=10.0,
                        help="hollow nodes' Lease renewal period, seconds (Kubernetes' node lease: 10)")
    parser.add_argument("--e2e-timeout", type=float, default=1800.0)
    parser.add_argument("--profile", type=Path, default=None,
                        help="end_to_end: write py-spy profiles (raw folded stacks) of server and sim here")
    parser.add_argument("--profile-gil", action="store_true",
                        help="end_to_end: profile only the thread holding the GIL (py-spy --gil): CPU, not waits")
    parser.add_argument("--keep", action="store_true",
                        help="end_to_end: keep the server's data dir (audit log, logs) and print where")
    parser.add_argument("--pod-watch", choices=("per-node", "shared"), default="per-node",
                        help="end_to_end: corral sim --pod-watch: a watch per hollow node, as kubelets "
                             "(default), or one shared watch (cheaper for the sim; before session 5 the only one)")
    parser.add_argument("--node-identity", choices=("node", "shared"), default="node",
                        help="end_to_end: node: each hollow node logs in as system:node:<name> (its own "
                             "token in the server's token file), so the node authorizer judges it as an "
                             "agent (default since session 6); shared: all use the admin token, as before")
    parser.add_argument("--server-workers", type=int, default=1,
                        help="end_to_end: API worker processes (corral server --api-workers N, passed if N > 1)")
    args = parser.parse_args()
    if args.server_workers < 1:
        parser.error(f"--server-workers must be at least 1, got {args.server_workers}")
    if args.mode in ("algorithm", "all"):
        algorithm(args)
    if args.mode in ("quality", "all"):
        quality(args)
    if args.mode in ("end_to_end", "all"):
        from schedule_e2e import end_to_end

        end_to_end(args)


if __name__ == "__main__":
    main()
