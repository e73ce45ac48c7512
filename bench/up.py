"""The one-machine cluster (`corral up`): memory when idle, then 0 → N
replicas of a Deployment with the real kubectl, and N → 0. Prints one JSON
object per figure.

    .venv/bin/python bench/up.py [--replicas 100] [--idle-seconds 10]
        [--timeout 300] [--keep]

corral runs as a child process (server, controllers, scheduler and agent in
one interpreter); each container runs under its own supervisor process
(``python -m corral.runtime.shim``), which outlives corral by design, so the
benchmark also removes every supervisor and container it caused, however it
ends.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    CorralChild,
    corral_child,
    emit,
    processes_matching,
    pss_mb,
    rss_mb,
    wait_until,
)

BENCH = "up"
NODE = "corral-bench"
APP = "bench-sleep"


class Api:
    """Just enough of a client for polling: blocking GETs with the token."""

    def __init__(self, child: CorralChild) -> None:
        self.url = child.url
        self.token = child.token()
        self.ssl = child.ssl_context()

    def get(self, path: str, **query: str) -> Any:
        url = self.url + path + ("?" + urllib.parse.urlencode(query) if query else "")
        req = urllib.request.Request(url, headers={"Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(req, context=self.ssl, timeout=30) as resp:
            return json.load(resp)

    def pods(self) -> list[dict[str, Any]]:
        return self.get("/api/v1/namespaces/default/pods", labelSelector=f"app={APP}")["items"]

    def node_ready(self, name: str) -> bool:
        node = self.get(f"/api/v1/nodes/{name}")
        return any(c.get("type") == "Ready" and c.get("status") == "True"
                   for c in node.get("status", {}).get("conditions", []))


def pod_ready(pod: dict[str, Any]) -> bool:
    status = pod.get("status", {})
    return status.get("phase") == "Running" and any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions", []))


def deployment(replicas: int) -> str:
    return json.dumps({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": APP, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": APP}},
            "template": {
                "metadata": {"labels": {"app": APP}},
                "spec": {"containers": [{"name": "sleep", "image": "busybox",
                                         "command": ["sleep", "3600"]}]},
            },
        },
    })


class Kubectl:
    """The real kubectl with the cluster's kubeconfig and its own cache dir."""

    def __init__(self, child: CorralChild, cache_dir: str) -> None:
        self.env = {**os.environ, "KUBECONFIG": str(child.kubeconfig)}
        self.cache_dir = cache_dir

    def __call__(self, *args: str, stdin: str | None = None, timeout: float = 120) -> str:
        cmd = ["kubectl", f"--cache-dir={self.cache_dir}", *args]
        done = subprocess.run(cmd, input=stdin, capture_output=True, text=True, env=self.env,
                              timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip()}")
        return done.stdout


def shim_pids(data_dir: Path) -> list[int]:
    return processes_matching(["corral.runtime.shim", str(data_dir)])


def container_pids(data_dir: Path) -> list[int]:
    """Live container main processes, from each supervisor's started.json
    (pid plus kernel start time, so a reused pid is not mistaken for one)."""
    from corral.runtime.shim import proc_start_ticks

    pids = []
    for started in (data_dir / "agent").rglob("started.json"):
        try:
            info = json.loads(started.read_text())
        except (OSError, ValueError):
            continue
        pid = info.get("pid")
        if isinstance(pid, int) and proc_start_ticks(pid) == info.get("startTicks"):
            pids.append(pid)
    return pids


def total_mb(pids: list[int], measure: Callable[[int], float] = rss_mb) -> float:
    total = 0.0
    for pid in pids:
        try:
            total += measure(pid)
        except (OSError, ValueError):  # exited meanwhile
            pass
    return round(total, 1)


def kill_leftovers(data_dir: Path) -> None:
    """After corral stopped: end the containers (their process groups) and
    supervisors it left behind, which belong to this run's data dir only."""
    for pid in container_pids(data_dir):
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    for pid in shim_pids(data_dir):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        wait_until(lambda: not shim_pids(data_dir), 10, "supervisors to exit")
    except TimeoutError as exc:
        print(f"# warning: {exc}: {shim_pids(data_dir)}", file=sys.stderr)


def memory(child: CorralChild, **params: Any) -> dict[str, Any]:
    shims = shim_pids(child.data_dir)
    containers = container_pids(child.data_dir)
    return {"corral_rss_mb": round(rss_mb(child.pid), 1), "shims": len(shims),
            "shims_rss_mb": total_mb(shims), "shims_pss_mb": total_mb(shims, pss_mb),
            "containers": len(containers), "containers_rss_mb": total_mb(containers), **params}


def idle(child: CorralChild, api: Api, args: argparse.Namespace) -> None:
    t0 = time.monotonic()
    wait_until(lambda: api.node_ready(NODE), 60, f"Node {NODE} to be Ready")
    node_ready_s = time.monotonic() - t0
    time.sleep(args.idle_seconds)  # the measurement itself: memory after a quiet spell
    mem = memory(child, idle_seconds=args.idle_seconds, node_ready_s=round(node_ready_s, 2))
    emit(BENCH, "idle_rss_mb", mem["corral_rss_mb"], "MiB", **mem)


def scale(child: CorralChild, api: Api, kubectl: Kubectl, args: argparse.Namespace) -> None:
    n = args.replicas
    t0 = time.monotonic()
    kubectl("apply", "-f", "-", stdin=deployment(n))
    apply_s = time.monotonic() - t0

    def all_ready() -> bool:
        pods = api.pods()
        return len(pods) == n and all(pod_ready(p) for p in pods)

    wait_until(all_ready, args.timeout, f"{n} pods Running and Ready", interval=0.25)
    emit(BENCH, "replicas_100_s", time.monotonic() - t0, "s", replicas=n,
         kubectl_apply_s=round(apply_s, 2))
    time.sleep(2)  # let status writes settle before reading memory
    mem = memory(child, replicas=n)
    emit(BENCH, "running_rss_mb", mem["corral_rss_mb"], "MiB", **mem)

    t0 = time.monotonic()
    kubectl("delete", "deployment", APP, "--wait=false")

    def all_gone() -> bool:
        return not api.pods() and not shim_pids(child.data_dir) and not container_pids(child.data_dir)

    wait_until(all_gone, args.timeout, "every pod, supervisor and container to be gone",
               interval=0.25)
    emit(BENCH, "delete_100_s", time.monotonic() - t0, "s", replicas=n)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=100)
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="deadline for each of scale-up and scale-down")
    parser.add_argument("--keep", action="store_true", help="keep the data dir and corral's log")
    args = parser.parse_args()
    if args.replicas < 1:
        parser.error("--replicas must be at least 1")
    return args


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="corral-bench-kubecache-") as cache, \
            corral_child("up", "--node-name", NODE, keep=args.keep, after_stop=kill_leftovers) as child:
        api = Api(child)
        idle(child, api, args)
        scale(child, api, Kubectl(child, cache), args)


if __name__ == "__main__":
    main()
