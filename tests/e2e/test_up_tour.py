"""The README's tour: the real kubectl against `corral up` running real processes."""

from __future__ import annotations

import json
import os
import threading
import uuid
from pathlib import Path

import pytest
from tests.conftest import REPO, CorralProcess, Kubectl, wait_for

pytestmark = pytest.mark.e2e

EXAMPLES = REPO / "examples"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    proc = CorralProcess("up", tmp_path_factory.mktemp("up") / "data", "--node-name", "tour-node")
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def kc(cluster: CorralProcess, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    k = Kubectl(cluster.kubeconfig, tmp_path_factory.mktemp("kubecache-up"))
    wait_for(lambda: "Ready" in k("get", "node", "tour-node", check=False), message="the node to be Ready")
    return k


@pytest.fixture
def ns(kc: Kubectl) -> str:
    name = f"tour-{uuid.uuid4().hex[:8]}"
    kc("create", "namespace", name)
    return name


def pods(kc: Kubectl, ns: str, selector: str = "") -> list[dict]:
    args = ["get", "pods", "-n", ns, "-o", "json"] + (["-l", selector] if selector else [])
    return json.loads(kc(*args))["items"]


def running_pods(kc: Kubectl, ns: str, selector: str) -> list[dict]:
    return [p for p in pods(kc, ns, selector)
            if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")]


def processes_of(pod_uids: set[str]) -> list[int]:
    """PIDs of live container processes of these pods, found the way an
    operator would: each container's supervisor (``corral.runtime.shim DIR``)
    records its pod in DIR/meta.json and the command's pid in started.json."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"corral.runtime.shim" not in argv:
            continue
        cdir = Path(argv[argv.index(b"corral.runtime.shim") + 1].decode())
        try:
            meta = json.loads((cdir / "meta.json").read_text())
            pid = json.loads((cdir / "started.json").read_text())["pid"]
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, ValueError, KeyError):
            continue
        if meta.get("pod_uid") in pod_uids and state not in ("Z", "X"):
            found.append(pid)
    return found


def test_tour(kc: Kubectl, ns: str):
    assert "deployment.apps/hello created" in kc("apply", "-n", ns, "-f", str(EXAMPLES / "hello.yaml"))
    kc("rollout", "status", "-n", ns, "deployment/hello", "--timeout=60s", timeout=90)
    wait_for(lambda: len(running_pods(kc, ns, "app=hello")) == 2, message="2 running pods")
    table = kc("get", "pods", "-n", ns, "-o", "wide")
    assert "Running" in table and "tour-node" in table

    pod = running_pods(kc, ns, "app=hello")[0]["metadata"]["name"]
    wait_for(lambda: "says hello" in kc("logs", "-n", ns, pod), message="log lines")
    assert len(kc("logs", "-n", ns, pod, "--tail=1").strip().splitlines()) == 1
    follower = kc.popen("logs", "-n", ns, "-f", pod)
    seen: list[str] = []
    threading.Thread(target=lambda: seen.extend(follower.stdout), daemon=True).start()  # type: ignore[arg-type]
    try:
        wait_for(lambda: len(seen) >= 3, message="kubectl logs -f to stream new lines")
    finally:
        follower.kill()
        follower.wait()

    kc("scale", "-n", ns, "deployment/hello", "--replicas=5")
    kc("rollout", "status", "-n", ns, "deployment/hello", "--timeout=60s", timeout=90)
    wait_for(lambda: len(running_pods(kc, ns, "app=hello")) == 5, message="5 running pods")
    uids = {p["metadata"]["uid"] for p in running_pods(kc, ns, "app=hello")}
    wait_for(lambda: len({u for u in uids if processes_of({u})}) == 5, message="5 pods with live processes")

    kc("set", "env", "-n", ns, "deployment/hello", "GREETING=bonjour")
    kc("rollout", "status", "-n", ns, "deployment/hello", "--timeout=90s", timeout=120)
    new_pod = running_pods(kc, ns, "app=hello")[0]["metadata"]["name"]
    wait_for(lambda: "says bonjour" in kc("logs", "-n", ns, new_pod), message="the new env in the new pods")
    assert kc("rollout", "history", "-n", ns, "deployment/hello").count("<none>") == 2

    kc("rollout", "undo", "-n", ns, "deployment/hello")
    kc("rollout", "status", "-n", ns, "deployment/hello", "--timeout=90s", timeout=120)
    rs = json.loads(kc("get", "rs", "-n", ns, "-o", "json"))["items"]
    assert len(rs) == 2, "undo must reuse the first ReplicaSet, not make a third"
    back = running_pods(kc, ns, "app=hello")[0]["metadata"]["name"]
    wait_for(lambda: "says hello" in kc("logs", "-n", ns, back), message="the old env after undo")

    all_uids = {p["metadata"]["uid"] for p in pods(kc, ns)}
    kc("delete", "-n", ns, "deployment", "hello", timeout=90)
    wait_for(lambda: pods(kc, ns) == [], timeout=60, message="the pods to be deleted")
    wait_for(lambda: processes_of(all_uids) == [], timeout=30, message="the processes to be gone")


def test_unschedulable_pod_says_why(kc: Kubectl, ns: str):
    kc("apply", "-n", ns, "-f", str(EXAMPLES / "too-big.yaml"))
    wait_for(lambda: "Insufficient cpu" in kc("describe", "pod", "-n", ns, "too-big"),
             message="the scheduling failure in describe")
    described = kc("describe", "pod", "-n", ns, "too-big")
    assert "FailedScheduling" in described and "0/1 nodes are available" in described
    pod = json.loads(kc("get", "pod", "-n", ns, "too-big", "-o", "json"))
    assert pod["status"]["phase"] == "Pending"
    cond = {c["type"]: c for c in pod["status"]["conditions"]}["PodScheduled"]
    assert cond["status"] == "False" and cond["reason"] == "Unschedulable"


def test_crashloop_backs_off(kc: Kubectl, ns: str):
    kc("apply", "-n", ns, "-f", str(EXAMPLES / "crashloop.yaml"))

    def status() -> dict:
        return json.loads(kc("get", "pod", "-n", ns, "crasher", "-o", "json"))["status"]

    def in_backoff() -> bool:
        cs = (status().get("containerStatuses") or [{}])[0]
        return cs.get("restartCount", 0) >= 1 and \
            (cs.get("state", {}).get("waiting") or {}).get("reason") == "CrashLoopBackOff"

    wait_for(in_backoff, timeout=60, message="CrashLoopBackOff")
    cs = status()["containerStatuses"][0]
    assert cs["lastState"]["terminated"]["exitCode"] == 3
    assert "back-off" in cs["state"]["waiting"]["message"]
    assert "CrashLoopBackOff" in kc("get", "pod", "-n", ns, "crasher")
    assert "about to fail" in kc("logs", "-n", ns, "crasher", "--previous", check=False) + \
        kc("logs", "-n", ns, "crasher", check=False)
    events = kc("get", "events", "-n", ns, "--field-selector", "involvedObject.name=crasher")
    assert "BackOff" in events


def test_bad_spec_gets_an_event_not_a_crashed_agent(kc: Kubectl, ns: str, cluster: CorralProcess):
    bad = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "no-command"},
           "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}
    kc("apply", "-n", ns, "-f", "-", input=json.dumps(bad))
    wait_for(lambda: "set command" in kc("describe", "pod", "-n", ns, "no-command"),
             message="an event saying the process runtime needs a command")
    good = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "fine"},
            "spec": {"containers": [{"name": "c", "image": "x", "command": ["sleep", "3600"]}]}}
    kc("apply", "-n", ns, "-f", "-", input=json.dumps(good))
    wait_for(lambda: json.loads(kc("get", "pod", "-n", ns, "fine", "-o", "json"))["status"].get("phase") == "Running",
             message="a good pod to run beside the bad one")
    assert cluster.proc.poll() is None
    assert os.path.exists(cluster.kubeconfig)
