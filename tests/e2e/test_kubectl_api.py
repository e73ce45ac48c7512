"""The real kubectl against `corral server`: the commands users type first."""

from __future__ import annotations

import json
import time

import pytest
import yaml
from tests.conftest import wait_for

pytestmark = pytest.mark.e2e

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: busybox:1.36
        command: ["sh", "-c", "sleep 3600"]
        env:
        - {name: GREETING, value: hello}
        ports:
        - containerPort: 8080
        resources:
          requests: {cpu: 10m, memory: 16Mi}
"""


def test_version_and_api_resources(kubectl):
    out = kubectl("version", "-o", "json")
    assert json.loads(out)["serverVersion"]["minor"] == "32"
    resources = kubectl("api-resources")
    for line in ("pods", "deployments", "replicasets", "configmaps", "leases", "namespaces"):
        assert line in resources
    assert "deploy" in resources and "apps/v1" in resources


def test_apply_create_then_update(kubectl, namespace):
    out = kubectl("apply", "-n", namespace, "-f", "-", input=DEPLOYMENT)
    assert "deployment.apps/web created" in out
    obj = json.loads(kubectl("get", "-n", namespace, "deployment", "web", "-o", "json"))
    assert obj["metadata"]["generation"] == 1
    assert "kubectl.kubernetes.io/last-applied-configuration" in obj["metadata"]["annotations"]
    changed = DEPLOYMENT.replace("value: hello", "value: bonjour").replace("replicas: 2", "replicas: 3")
    out = kubectl("apply", "-n", namespace, "-f", "-", input=changed)
    assert "deployment.apps/web configured" in out
    obj = json.loads(kubectl("get", "-n", namespace, "deployment", "web", "-o", "json"))
    container = obj["spec"]["template"]["spec"]["containers"][0]
    assert container["env"] == [{"name": "GREETING", "value": "bonjour"}]
    assert container["ports"][0]["containerPort"] == 8080  # merged, not replaced
    assert obj["spec"]["replicas"] == 3
    assert obj["metadata"]["generation"] == 2
    out = kubectl("apply", "-n", namespace, "-f", "-", input=changed)
    assert "unchanged" in out


def test_apply_rejects_unknown_field(kubectl, namespace):
    bad = DEPLOYMENT.replace("replicas: 2", "replicas: 2\n  replicaz: 3")
    result = kubectl.run("apply", "-n", namespace, "-f", "-", input=bad, check=False)
    assert result.returncode != 0
    assert 'unknown field "spec.replicaz"' in result.stderr
    assert kubectl.run("get", "-n", namespace, "deployment", "web", check=False).returncode != 0


def test_get_tables(kubectl, namespace):
    kubectl("apply", "-n", namespace, "-f", "-", input=DEPLOYMENT)
    out = kubectl("get", "-n", namespace, "deployments")
    header = out.splitlines()[0].split()
    assert header == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    wide = kubectl("get", "-n", namespace, "deployments", "-o", "wide").splitlines()[0].split()
    assert wide[:5] == header and "CONTAINERS" in wide and "SELECTOR" in wide
    all_ns = kubectl("get", "deployments", "-A")
    assert namespace in all_ns
    labels = kubectl("get", "-n", namespace, "deployments", "--show-labels")
    assert "app=web" in labels
    as_yaml = yaml.safe_load(kubectl("get", "-n", namespace, "deployment", "web", "-o", "yaml"))
    assert as_yaml["kind"] == "Deployment" and as_yaml["metadata"]["namespace"] == namespace
    names = kubectl("get", "-n", namespace, "deployments", "-o", "name")
    assert names.strip() == "deployment.apps/web"
    ns_out = kubectl("get", "namespaces")
    assert ns_out.splitlines()[0].split() == ["NAME", "STATUS", "AGE"] and "kube-system" in ns_out


def test_create_with_protobuf_bodies(kubectl, namespace):
    assert "created" in kubectl("create", "-n", namespace, "deployment", "pb", "--image=busybox:1.36", "--replicas=2")
    dep = json.loads(kubectl("get", "-n", namespace, "deployment", "pb", "-o", "json"))
    assert dep["spec"]["replicas"] == 2
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "busybox:1.36"
    kubectl("create", "-n", namespace, "configmap", "cfg", "--from-literal=color=blue", "--from-literal=size=9")
    cm = json.loads(kubectl("get", "-n", namespace, "configmap", "cfg", "-o", "json"))
    assert cm["data"] == {"color": "blue", "size": "9"}
    other = namespace + "-x"
    kubectl("create", "namespace", other)
    assert json.loads(kubectl("get", "namespace", other, "-o", "json"))["status"]["phase"] == "Active"
    kubectl("create", "-n", namespace, "secret", "generic", "s", "--from-literal=k=v")
    kubectl("create", "-n", namespace, "service", "clusterip", "svc", "--tcp=80:8080")
    svc = json.loads(kubectl("get", "-n", namespace, "service", "svc", "-o", "json"))
    assert svc["spec"]["clusterIP"].startswith("127.")


def test_scale_changes_replicas(kubectl, namespace):
    kubectl("apply", "-n", namespace, "-f", "-", input=DEPLOYMENT)
    assert "scaled" in kubectl("scale", "-n", namespace, "deployment/web", "--replicas=5")
    dep = json.loads(kubectl("get", "-n", namespace, "deployment", "web", "-o", "json"))
    assert dep["spec"]["replicas"] == 5


def test_delete_and_describe(kubectl, namespace):
    kubectl("apply", "-n", namespace, "-f", "-", input=DEPLOYMENT)
    described = kubectl("describe", "-n", namespace, "deployment", "web")
    assert "Name:" in described and "web" in described and "busybox:1.36" in described
    kubectl("create", "-n", namespace, "configmap", "gone", "--from-literal=a=b")
    assert 'configmap "gone" deleted' in kubectl("delete", "-n", namespace, "configmap", "gone")
    result = kubectl.run("get", "-n", namespace, "configmap", "gone", check=False)
    assert result.returncode != 0 and "NotFound" in result.stderr


def test_explain(kubectl):
    out = kubectl("explain", "pods.spec.containers")
    assert "KIND:" in out and "Pod" in out and "image" in out
    out = kubectl("explain", "deployments.spec.strategy")
    assert "rollingUpdate" in out


def test_get_watch_streams_changes(kubectl, namespace):
    kubectl("create", "-n", namespace, "configmap", "w1", "--from-literal=a=1")
    watcher = kubectl.popen("get", "-n", namespace, "configmaps", "-w", "--request-timeout=30s")
    try:
        lines: list[str] = []
        import threading

        def reader() -> None:
            assert watcher.stdout is not None
            for line in watcher.stdout:
                lines.append(line)

        threading.Thread(target=reader, daemon=True).start()
        wait_for(lambda: any("w1" in line for line in lines), message="initial list in get -w")
        time.sleep(0.2)  # let kubectl open its watch after printing the list (not coordination of our code)
        kubectl("create", "-n", namespace, "configmap", "w2", "--from-literal=a=2")
        wait_for(lambda: any("w2" in line for line in lines), message="watch event for w2")
    finally:
        watcher.kill()
        watcher.wait()


SERVICE = """
apiVersion: v1
kind: Service
metadata: {name: front}
spec:
  type: NodePort
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 8080}
"""


def test_apply_service_twice_keeps_allocations(kubectl, namespace):
    kubectl("apply", "-n", namespace, "-f", "-", input=SERVICE)
    first = json.loads(kubectl("get", "-n", namespace, "service", "front", "-o", "json"))["spec"]
    assert first["clusterIP"].startswith("127.") and 30000 <= first["ports"][0]["nodePort"] <= 32767
    out = kubectl("apply", "-n", namespace, "-f", "-", input=SERVICE.replace("targetPort: 8080", "targetPort: 9090"))
    assert "configured" in out
    second = json.loads(kubectl("get", "-n", namespace, "service", "front", "-o", "json"))["spec"]
    assert second["clusterIP"] == first["clusterIP"]
    assert second["ports"][0]["nodePort"] == first["ports"][0]["nodePort"]
    assert second["ports"][0]["targetPort"] == 9090
    table = kubectl("get", "-n", namespace, "services").splitlines()
    assert table[0].split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    assert f"80:{first['ports'][0]['nodePort']}/TCP" in table[1]


def test_pod_graceful_delete_waits_for_its_node(kubectl, namespace, k8s):
    from kubernetes import client

    core = client.CoreV1Api(k8s)
    core.create_node({"metadata": {"name": f"{namespace}-node"}})
    pod = {"metadata": {"name": "g"}, "spec": {"nodeName": f"{namespace}-node", "terminationGracePeriodSeconds": 20,
                                               "containers": [{"name": "c", "image": "x", "command": ["sleep", "9"]}]}}
    core.create_namespaced_pod(namespace, pod)
    core.delete_namespaced_pod("g", namespace)
    held = core.read_namespaced_pod("g", namespace)
    assert held.metadata.deletion_timestamp is not None and held.metadata.deletion_grace_period_seconds == 20
    assert "Terminating" in kubectl("get", "-n", namespace, "pod", "g")
    core.delete_namespaced_pod("g", namespace, grace_period_seconds=0)  # what the node's agent sends
    assert kubectl.run("get", "-n", namespace, "pod", "g", check=False).returncode != 0
    core.delete_node(f"{namespace}-node")
