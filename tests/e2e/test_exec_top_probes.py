"""kubectl exec, kubectl top and a readiness probe against `corral up`, the way
the README shows them (scheduler, agent and process runtime all real)."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest
from tests.conftest import CorralProcess, Kubectl, wait_for

pytestmark = pytest.mark.e2e

MANIFEST = """
apiVersion: v1
kind: Pod
metadata:
  name: probed
  labels: {app: probed}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "while :; do :; done"]
    readinessProbe:
      exec: {command: ["sh", "-c", "test -f $READY_FILE"]}
      periodSeconds: 1
    env:
    - {name: READY_FILE, value: "READY_PATH"}
"""


@pytest.fixture(scope="module")
def kc(tmp_path_factory: pytest.TempPathFactory):
    data = tmp_path_factory.mktemp("up-exec") / "data"
    proc = CorralProcess("up", data, "--node-name", "exec-node", "--default-runtime", "process")
    try:
        proc.wait_ready()
        k = Kubectl(proc.kubeconfig, tmp_path_factory.mktemp("kubecache-exec"))
        wait_for(lambda: "Ready" in k("get", "node", "exec-node", check=False), message="node Ready")
        yield k
    finally:
        proc.stop()


def _ready(kc: Kubectl) -> str:
    pod = json.loads(kc("get", "pod", "probed", "-o", "json"))
    conds = {c["type"]: c["status"] for c in pod["status"].get("conditions") or []}
    return conds.get("Ready", "")


def test_exec_top_and_readiness(kc: Kubectl):
    # Not under /tmp: the process runtime gives each pod a private /tmp.
    shared = Path(tempfile.mkdtemp(prefix="corral-e2e-", dir="/var/tmp"))
    flag = shared / "ready"
    kc("apply", "-f", "-", input=MANIFEST.replace("READY_PATH", str(flag)))
    wait_for(lambda: json.loads(kc("get", "pod", "probed", "-o", "json"))["status"].get("phase") == "Running",
             timeout=30, message="pod Running")
    assert _ready(kc) == "False"
    assert "0/1" in kc("get", "pod", "probed")

    # exec: output, stdin and the exit code come back through kubectl
    assert kc("exec", "probed", "--", "sh", "-c", "echo $READY_FILE") == f"{flag}\n"
    assert kc("exec", "-i", "probed", "--", "cat", input="through stdin\n") == "through stdin\n"
    failed = kc.run("exec", "probed", "--", "sh", "-c", "exit 3", check=False)
    assert failed.returncode == 3

    kc("exec", "probed", "--", "touch", str(flag))
    wait_for(lambda: _ready(kc) == "True", timeout=15, message="Ready after the probe passes")
    assert "1/1" in kc("get", "pod", "probed")

    def top_line() -> list[str] | None:
        out = kc.run("top", "pod", "probed", "--no-headers", check=False)
        return out.stdout.split() if out.returncode == 0 and out.stdout.strip() else None

    name, cpu, memory = wait_for(top_line, timeout=20, message="kubectl top pod")
    assert name == "probed" and int(cpu.rstrip("m")) >= 300 and memory.endswith("Mi")
    node = kc("top", "node", "--no-headers").split()
    assert node[0] == "exec-node" and node[1].endswith("m") and node[2].endswith("%")
    kc("delete", "pod", "probed", "--wait=true", timeout=60)
    shutil.rmtree(shared, ignore_errors=True)
