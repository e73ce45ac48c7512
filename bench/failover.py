"""Failover: how long a dead machine's pods take to run elsewhere, and whether
old and new copies ever run together.

    .venv/bin/python bench/failover.py [--trials 10] [--load-seconds 300]

Four test hosts (network namespaces on a bridge in 198.18.0.0/15): the
server on one, an agent on each of the other three (``node-1..3``), and a
Deployment of 30 pods (``sleep``) spread over them. Each trial picks the node
with the most pods and either kills its agent with SIGKILL (``kill9``: its
containers, children of their own supervisors, keep running until fencing
stops them) or cuts its link (``linkcut``: a partition; the agent lives on,
cut off). The time from the kill to 30 Running pods on the other nodes is
one failover; ``--trials`` of each kind. The agent is then restarted (same
node name: it resumes) or the link healed, and the pods are re-spread.

``overlaps`` counts the samples (every 20 ms, the whole run) in which more
of the Deployment's containers ran than its 30 replicas, read from /proc on
every host (which processes actually run, not what the API says).

``false_failovers``: afterwards, for ``--load-seconds``, two CPU burners
saturate both cores while nothing is broken; every node declared unreachable
(Ready turning Unknown) and every self-fencing of an agent counts. The
largest gap between two lease renewals seen from outside is printed too.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit, percentile  # noqa: E402

from corral.client.api import ApiClient  # noqa: E402
from corral.client.resources import DEPLOYMENTS, LEASES, NODES, PODS  # noqa: E402
from corral.testing_hosts import CorralHosts, HostNet, OverlapMonitor, running_containers  # noqa: E402

BENCH = "failover"
NS = "default"
APP = "fo"
REPLICAS = 30
AGENTS = 3
POLL = 0.05


def deployment(replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": APP},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": APP}},
            "template": {
                "metadata": {"labels": {"app": APP}},
                "spec": {"terminationGracePeriodSeconds": 1,
                         "containers": [{"name": "c", "image": "sleep",
                                         "command": ["sleep", "100000"]}]},
            },
        },
    }


async def running_pods(api: ApiClient) -> list[dict[str, Any]]:
    pods = (await api.list(PODS, NS, label_selector=f"app={APP}"))["items"]
    return [p for p in pods if (p.get("status") or {}).get("phase") == "Running"
            and not p["metadata"].get("deletionTimestamp")]


async def wait_until(pred: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await pred():
            return
        await asyncio.sleep(POLL)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


async def nodes_ready(api: ApiClient, names: list[str]) -> bool:
    nodes = {n["metadata"]["name"]: n for n in (await api.list(NODES))["items"]}
    for name in names:
        node = nodes.get(name)
        if node is None or any(t.get("key", "").startswith("node.kubernetes.io/")
                               for t in (node.get("spec") or {}).get("taints") or []):
            return False
        conds = {c["type"]: c["status"] for c in (node.get("status") or {}).get("conditions") or []}
        if conds.get("Ready") != "True":
            return False
    return True


async def respread(api: ApiClient, dirs: list[Path]) -> None:
    """Scale to 0 and back so the pods spread over all nodes again."""
    await api.patch(DEPLOYMENTS, APP, {"spec": {"replicas": 0}}, NS)

    async def gone() -> bool:
        pods = (await api.list(PODS, NS, label_selector=f"app={APP}"))["items"]
        procs = sum(len(running_containers(d)) for d in dirs)
        return not pods and procs == 0

    await wait_until(gone, 60, "the pods to go")
    await api.patch(DEPLOYMENTS, APP, {"spec": {"replicas": REPLICAS}}, NS)
    await wait_until(lambda: _count_is(api, REPLICAS), 60, "30 running pods")


async def _count_is(api: ApiClient, n: int) -> bool:
    return len(await running_pods(api)) >= n


async def trial(api: ApiClient, hosts: CorralHosts, kind: str) -> float:
    pods = await running_pods(api)
    per_node: dict[str, int] = {}
    for p in pods:
        per_node[p["spec"]["nodeName"]] = per_node.get(p["spec"]["nodeName"], 0) + 1
    victim = max(per_node, key=lambda n: per_node[n])
    index = int(victim.rsplit("-", 1)[1])
    host = hosts.agent_host(index)
    t0 = time.monotonic()
    if kind == "kill9":
        hosts.net.kill(hosts.agents[victim])
    else:
        hosts.net.partition(host)

    async def replaced() -> bool:
        ok = [p for p in await running_pods(api) if p["spec"]["nodeName"] != victim]
        return len(ok) >= REPLICAS

    await wait_until(replaced, 60, f"replacements of {victim}'s pods")
    took = time.monotonic() - t0
    if kind == "kill9":
        hosts.start_agent(index, victim)
    else:
        hosts.net.heal(host)
    await wait_until(lambda: nodes_ready(api, [f"node-{i}" for i in range(1, AGENTS + 1)]),
                     60, "every node Ready again")
    return took


async def lease_gaps(api: ApiClient, stop: asyncio.Event) -> list[float]:
    """Gaps between renewals of every node's lease, as seen from here."""
    last: dict[str, tuple[str, float]] = {}
    gaps: list[float] = []
    while not stop.is_set():
        for lease in (await api.list(LEASES, "kube-node-lease"))["items"]:
            name, rv = lease["metadata"]["name"], lease["metadata"]["resourceVersion"]
            now = time.monotonic()
            if name in last and last[name][0] != rv:
                gaps.append(now - last[name][1])
            if name not in last or last[name][0] != rv:
                last[name] = (rv, now)
        await asyncio.sleep(0.1)
    return gaps


def start_burners() -> list[subprocess.Popen[bytes]]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"])
            for _ in range(os.cpu_count() or 2)]


async def false_failovers(api: ApiClient, hosts: CorralHosts, seconds: float) -> dict[str, Any]:
    logs = {name: hosts.workdir / f"{name}.log" for name in hosts.agents}
    fences_before = {n: _fences(p) for n, p in logs.items()}
    unknown_before = _unknowns(hosts.workdir / "server.log")
    burners = start_burners()
    stop = asyncio.Event()
    gaps_task = asyncio.ensure_future(lease_gaps(api, stop))
    try:
        await asyncio.sleep(seconds)
    finally:
        stop.set()
        for b in burners:
            b.kill()
            b.wait()
    gaps = await gaps_task
    fences = sum(_fences(p) - fences_before[n] for n, p in logs.items())
    unknowns = _unknowns(hosts.workdir / "server.log") - unknown_before
    return {"declared_dead": unknowns, "fences": fences, "gaps": gaps}


def _fences(log: Path) -> int:
    return len(re.findall(r"fencing: no lease renewal succeeded", log.read_text(errors="replace")))


def _unknowns(log: Path) -> int:
    return len(re.findall(r"stopped renewing its lease: marking it unreachable",
                          log.read_text(errors="replace")))


async def run(args: argparse.Namespace, work: Path) -> None:
    with HostNet(AGENTS + 1) as net:
        hosts = CorralHosts(net, work)
        hosts.start_server()
        for i in range(1, AGENTS + 1):
            hosts.start_agent(i)
        dirs = [work / f"node-{i}" for i in range(1, AGENTS + 1)]
        monitor = OverlapMonitor(dirs, REPLICAS, f"{APP}-")
        async with ApiClient.from_kubeconfig(str(hosts.kubeconfig)) as api:
            await wait_until(lambda: nodes_ready(api, [f"node-{i}" for i in range(1, AGENTS + 1)]),
                             60, "the nodes")
            await api.create(DEPLOYMENTS, deployment(REPLICAS), NS)
            await wait_until(lambda: _count_is(api, REPLICAS), 60, "30 running pods")
            monitor.start()
            times: dict[str, list[float]] = {"kill9": [], "linkcut": []}
            for n in range(args.trials):
                for kind in ("kill9", "linkcut"):
                    took = await trial(api, hosts, kind)
                    times[kind].append(took)
                    print(f"# trial {n} {kind}: {took:.2f}s", file=sys.stderr, flush=True)
                    await respread(api, dirs)
            monitor.stop()
            params = {"hosts": AGENTS, "pods": REPLICAS, "trials": args.trials}
            every = times["kill9"] + times["linkcut"]
            for kind, values in (("all", every), *times.items()):
                suffix = "" if kind == "all" else f"_{kind}"
                emit(BENCH, f"failover_p50_s{suffix}", percentile(values, 50), "s", **params)
                emit(BENCH, f"failover_p99_s{suffix}", percentile(values, 99), "s", **params)
            emit(BENCH, "overlaps", monitor.overlaps, "samples", samples=monitor.samples,
                 most_running=monitor.most, allowed=REPLICAS, **params)
            if args.load_seconds > 0:
                result = await false_failovers(api, hosts, args.load_seconds)
                load = {"seconds": args.load_seconds, "burners": os.cpu_count() or 2, **params}
                emit(BENCH, "false_failovers", result["declared_dead"] + result["fences"], "events",
                     declared_dead=result["declared_dead"], fences=result["fences"], **load)
                gaps = result["gaps"] or [0.0]
                emit(BENCH, "lease_gap_max_s", max(gaps), "s", samples=len(gaps), **load)
                emit(BENCH, "lease_gap_p999_s", percentile(gaps, 99.9), "s", samples=len(gaps),
                     **load)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=10, help="trials of each kind")
    parser.add_argument("--load-seconds", type=float, default=300.0)
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs)")
    args = parser.parse_args()
    if args.trials < 1:
        parser.error("--trials: at least 1")
    work = Path(tempfile.mkdtemp(prefix="corral-failover-"))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        asyncio.run(run(args, work))
    finally:
        if not args.keep:
            subprocess.run(["rm", "-rf", str(work)], check=False)
        else:
            print(f"# logs in {work}", file=sys.stderr)


if __name__ == "__main__":
    main()
