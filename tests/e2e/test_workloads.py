"""Workloads with the real kubectl against `corral up` running real processes:
Jobs (plain and Indexed), rollout undo, auto-rollback of a broken rollout,
a DaemonSet following a joining node, an HPA when the metrics API is served,
and a drain that a disruption budget blocks (last: it empties the node)."""

from __future__ import annotations

import json
import uuid

import pytest
from tests.conftest import REPO, CorralProcess, Kubectl, wait_for

pytestmark = pytest.mark.e2e
EXAMPLES = REPO / "examples"
NODE = "workloads-node"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    proc = CorralProcess("up", tmp_path_factory.mktemp("up") / "data", "--node-name", NODE)
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def kc(cluster: CorralProcess, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    k = Kubectl(cluster.kubeconfig, tmp_path_factory.mktemp("kubecache-workloads"))
    wait_for(lambda: "Ready" in k("get", "node", NODE, check=False), message="the node to be Ready")
    return k


@pytest.fixture
def ns(kc: Kubectl) -> str:
    name = f"wl-{uuid.uuid4().hex[:8]}"
    kc("create", "namespace", name)
    return name


def get(kc: Kubectl, *args: str) -> dict:
    return json.loads(kc("get", *args, "-o", "json"))


def deployment(name: str, command: str, annotations: dict | None = None, deadline: int = 600) -> str:
    return json.dumps({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": {"replicas": 1, "progressDeadlineSeconds": deadline,
                 "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}}, "spec": {
                     "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "main", "image": "busybox", "command": ["sh", "-c", command]}]}}},
    })


def test_job_completions_and_table(kc: Kubectl, ns: str) -> None:
    kc("apply", "-n", ns, "-f", str(EXAMPLES / "job.yaml"))
    kc("wait", "-n", ns, "--for=condition=complete", "job/count", "--timeout=90s", timeout=100)
    table = kc("get", "jobs", "-n", ns)
    assert table.splitlines()[0].split() == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    assert "Complete" in table and "5/5" in table
    pods = get(kc, "pods", "-n", ns, "-l", "batch.kubernetes.io/job-name=count")["items"]
    assert len(pods) == 5 and all(p["status"]["phase"] == "Succeeded" for p in pods)


def test_cronjob_fires_on_the_real_clock(kc: Kubectl, ns: str) -> None:
    """Once with the real clock (the controller's schedule logic is covered on
    a fake clock in tests/integration/workloads): the next minute boundary
    starts a Job that runs to completion."""
    kc("apply", "-n", ns, "-f", str(EXAMPLES / "cronjob.yaml"))

    def finished_job() -> bool:
        jobs = get(kc, "jobs", "-n", ns)["items"]
        owned = [j for j in jobs if any(o.get("kind") == "CronJob" and o.get("name") == "tick"
                                        for o in j["metadata"].get("ownerReferences", []))]
        return any(c.get("type") == "Complete" and c.get("status") == "True"
                   for j in owned for c in j.get("status", {}).get("conditions", []))

    wait_for(finished_job, timeout=150, interval=1.0, message="a Job started by the CronJob to complete")
    wait_for(lambda: get(kc, "cronjob", "tick", "-n", ns).get("status", {}).get("lastSuccessfulTime"),
             timeout=30, interval=0.5, message="the CronJob to record its last success")
    table = kc("get", "cronjobs", "-n", ns).splitlines()
    assert table[0].split()[:3] == ["NAME", "SCHEDULE", "TIMEZONE"] or table[0].split()[:2] == ["NAME", "SCHEDULE"]
    assert "*/1 * * * *" in table[1]
    kc("delete", "-n", ns, "cronjob", "tick")


def test_indexed_job_sees_its_index(kc: Kubectl, ns: str) -> None:
    body = json.dumps({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "idx"},
        "spec": {"completions": 3, "parallelism": 3, "completionMode": "Indexed", "template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "w", "image": "busybox", "command": ["sh", "-c", "echo index=$JOB_COMPLETION_INDEX"]}]}}},
    })
    kc("create", "-n", ns, "-f", "-", input=body)
    kc("wait", "-n", ns, "--for=condition=complete", "job/idx", "--timeout=60s", timeout=70)
    assert get(kc, "job", "idx", "-n", ns)["status"]["completedIndexes"] == "0-2"
    seen = set()
    for pod in get(kc, "pods", "-n", ns, "-l", "batch.kubernetes.io/job-name=idx")["items"]:
        index = pod["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"]
        assert kc("logs", "-n", ns, pod["metadata"]["name"]).strip() == f"index={index}"
        seen.add(index)
    assert seen == {"0", "1", "2"}


def test_rollout_undo_to_revision(kc: Kubectl, ns: str) -> None:
    kc("create", "-n", ns, "-f", "-", input=deployment("web", "echo one; sleep 3600"))
    kc("rollout", "status", "-n", ns, "deployment/web", "--timeout=60s", timeout=70)
    kc("patch", "-n", ns, "deployment/web", "--type=json", "-p",
       json.dumps([{"op": "replace", "path": "/spec/template/spec/containers/0/command/2",
                    "value": "echo two; sleep 3600"}]))
    kc("rollout", "status", "-n", ns, "deployment/web", "--timeout=60s", timeout=70)
    assert "2" in kc("rollout", "history", "-n", ns, "deployment/web")
    kc("rollout", "undo", "-n", ns, "deployment/web", "--to-revision=1")
    kc("rollout", "status", "-n", ns, "deployment/web", "--timeout=60s", timeout=70)
    d = get(kc, "deployment", "web", "-n", ns)
    assert d["spec"]["template"]["spec"]["containers"][0]["command"][2] == "echo one; sleep 3600"


def test_broken_rollout_rolls_itself_back(kc: Kubectl, ns: str) -> None:
    kc("create", "-n", ns, "-f", "-",
       input=deployment("svc", "sleep 3600", {"corral.dev/auto-rollback": "true"}, deadline=30))
    kc("rollout", "status", "-n", ns, "deployment/svc", "--timeout=60s", timeout=70)
    kc("patch", "-n", ns, "deployment/svc", "--type=json", "-p",
       json.dumps([{"op": "replace", "path": "/spec/template/spec/containers/0/command/2", "value": "exit 3"}]))

    def rolled_back() -> bool:
        d = get(kc, "deployment", "svc", "-n", ns)
        return d["spec"]["template"]["spec"]["containers"][0]["command"][2] == "sleep 3600"
    wait_for(rolled_back, timeout=60, interval=0.5, message="the deployment to roll itself back")
    events = get(kc, "events", "-n", ns, "--field-selector", "reason=AutoRollback")["items"]
    assert events and "crash-looping" in events[0]["message"] or "deadline" in events[0]["message"]
    kc("rollout", "status", "-n", ns, "deployment/svc", "--timeout=60s", timeout=70)


def test_daemonset_follows_a_joining_node(kc: Kubectl, ns: str) -> None:
    kc("apply", "-n", ns, "-f", str(EXAMPLES / "daemonset.yaml"))

    def pods_by_target() -> dict[str, dict]:
        out = {}
        for pod in get(kc, "pods", "-n", ns, "-l", "app=node-agent")["items"]:
            terms = pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
            out[terms["nodeSelectorTerms"][0]["matchFields"][0]["values"][0]] = pod
        return out
    wait_for(lambda: set(pods_by_target()) == {NODE}, timeout=30, message="a pod for the first node")
    hollow = f"hollow-{uuid.uuid4().hex[:6]}"
    kc("create", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "Node", "metadata": {"name": hollow}}))
    try:
        kc("patch", "node", hollow, "--subresource=status", "--type=merge", "-p", json.dumps({"status": {
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
            "allocatable": {"cpu": "2", "memory": "2Gi", "pods": "10"},
            "capacity": {"cpu": "2", "memory": "2Gi", "pods": "10"}}}))
        wait_for(lambda: set(pods_by_target()) == {NODE, hollow}, timeout=30, message="a pod for the joining node")
        wait_for(lambda: pods_by_target()[hollow]["spec"].get("nodeName") == hollow, timeout=30,
                 message="the scheduler to bind the daemon pod to the hollow node")
        assert "2" in kc("get", "ds", "node-agent", "-n", ns)
    finally:
        kc("delete", "node", hollow, "--wait=false", check=False)
    wait_for(lambda: set(pods_by_target()) == {NODE}, timeout=30, message="the departed node's pod removed")


def test_hpa_scales_a_cpu_burner(kc: Kubectl, ns: str) -> None:
    if "metrics.k8s.io" not in kc("api-resources", check=False):
        pytest.skip("the metrics API (metrics.k8s.io) is not served yet; HPA logic is covered on a fake clock")
    burner = json.loads(deployment("burn", "while true; do :; done"))
    burner["spec"]["template"]["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "100m"}}
    kc("create", "-n", ns, "-f", "-", input=json.dumps(burner))
    kc("autoscale", "-n", ns, "deployment/burn", "--min=1", "--max=3", "--cpu-percent=50")
    wait_for(lambda: get(kc, "deployment", "burn", "-n", ns)["spec"]["replicas"] > 1, timeout=90,
             interval=1, message="the HPA to scale the burner up")
    kc("patch", "-n", ns, "hpa/burn", "--type=merge", "-p",
       json.dumps({"spec": {"behavior": {"scaleDown": {"stabilizationWindowSeconds": 0}}}}))
    kc("patch", "-n", ns, "deployment/burn", "--type=json", "-p", json.dumps([
        {"op": "replace", "path": "/spec/template/spec/containers/0/command/2", "value": "sleep 3600"}]))
    wait_for(lambda: get(kc, "deployment", "burn", "-n", ns)["spec"]["replicas"] == 1, timeout=120,
             interval=1, message="the HPA to scale back down")


def test_drain_is_blocked_by_a_disruption_budget(kc: Kubectl, ns: str) -> None:
    kc("create", "-n", ns, "-f", "-", input=deployment("guarded", "sleep 3600"))
    kc("rollout", "status", "-n", ns, "deployment/guarded", "--timeout=60s", timeout=70)
    kc("create", "poddisruptionbudget", "guard", "-n", ns, "--selector=app=guarded", "--min-available=1")
    wait_for(lambda: get(kc, "pdb", "guard", "-n", ns).get("status", {}).get("expectedPods") == 1,
             message="the budget's status")
    assert "ALLOWED DISRUPTIONS" in kc("get", "pdb", "-n", ns)
    pod = get(kc, "pods", "-n", ns, "-l", "app=guarded")["items"][0]["metadata"]["name"]
    try:
        result = kc.run("drain", NODE, "--ignore-daemonsets", "--delete-emptydir-data", "--force",
                        "--timeout=8s", check=False, timeout=40)
        assert result.returncode != 0
        assert "disruption budget" in (result.stdout + result.stderr)
        assert get(kc, "pod", pod, "-n", ns)["metadata"].get("deletionTimestamp") is None
        assert get(kc, "node", NODE)["spec"].get("unschedulable") is True
    finally:
        kc("uncordon", NODE)
    assert not get(kc, "node", NODE)["spec"].get("unschedulable")
