"""`corral up --api-workers 2`: the API port and the server process's own
components (controllers, scheduler, the local agent) are served by two
worker processes; the server process keeps the store. A workload runs,
and logs and exec work through the workers."""

from __future__ import annotations

import json
import os
import signal

import pytest
from tests.conftest import REPO, CorralProcess, Kubectl, wait_for

from fixtures.api_workers import worker_pids

pytestmark = pytest.mark.e2e


def test_a_cluster_whose_api_is_served_by_workers_runs_a_deployment(tmp_path) -> None:
    proc = CorralProcess("up", tmp_path / "data", "--node-name", "workers-node", "--api-workers", "2")
    try:
        proc.wait_ready()
        kc = Kubectl(proc.kubeconfig, tmp_path / "kubecache")
        wait_for(lambda: "Ready" in kc("get", "node", "workers-node", check=False), 30, message="the node")
        kc("apply", "-f", str(REPO / "examples" / "hello.yaml"))
        kc("wait", "--for=condition=Available", "deployment/hello", "--timeout=90s")
        pods = json.loads(kc("get", "pods", "-l", "app=hello", "-o", "json"))["items"]
        name = pods[0]["metadata"]["name"]
        wait_for(lambda: "says" in kc("logs", name, check=False), 30, message="the pod's log")
        assert kc("exec", name, "--", "echo", "through-a-worker").strip() == "through-a-worker"
        data = proc.data_dir
        own = [line for line in (data / "audit.log").read_text().splitlines()
               if '"userAgent":"corral-api-worker' not in line]  # the workers reading its role
        assert own == [], "the server process should serve no request itself"

        def served_all() -> bool:  # audit events reach the file in batches, within ~0.25 s
            served = (data / "audit.worker1.log").read_text() + (data / "audit.worker2.log").read_text()
            return all(f'"userAgent":"{agent}' in served
                       for agent in ("corral-agent", "corral-controller-manager", "corral-scheduler", "kubectl"))

        wait_for(served_all, 10, message="every client in the workers' audit logs")
        # The worker the controller manager and the agent talk to dies: the
        # pool starts another on the same socket and they carry on.
        victim = worker_pids(data)[1]
        os.kill(victim, signal.SIGKILL)
        kc("scale", "deployment/hello", "--replicas=3")
        kc("wait", "--for=condition=Available", "deployment/hello", "--timeout=90s")
        wait_for(lambda: len(json.loads(kc("get", "pods", "-l", "app=hello", "-o", "json"))["items"]) == 3, 60,
                 message="three hello pods")
        assert worker_pids(data).get(1) not in (None, victim)
    finally:
        proc.stop()
