"""In-cluster clients: the `kubernetes` package's load_incluster_config in
a pod of `corral up` finds its projected token, CA and namespace, reaches
the API through the `kubernetes` Service, and RBAC decides what it may do."""

from __future__ import annotations

import json
import random
import sys
import uuid

import pytest
from tests.conftest import CorralProcess, Kubectl, wait_for

from corral.runtime.rootfs import supported

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(supported(__import__("pathlib").Path("/var/tmp")) is not None,
                                 reason="volumes at their mountPath need root and overlayfs")]

SCRIPT = """
import os
from kubernetes import client, config
d = "/var/run/secrets/kubernetes.io/serviceaccount"
print("files", sorted(n for n in os.listdir(d) if not n.startswith("..")), open(d + "/namespace").read())
config.load_incluster_config()
try:
    pods = client.CoreV1Api().list_namespaced_pod(open(d + "/namespace").read())
    print("LISTED", sorted(p.metadata.name for p in pods.items))
except client.exceptions.ApiException as exc:
    print("STATUS", exc.status)
"""


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory):
    # A service range of its own: another cluster on this machine (a parallel
    # test run) would hold 127.43.0.1:443 for its own kubernetes Service.
    cidr = f"127.{random.randint(60, 250)}.0.0/16"
    proc = CorralProcess("up", tmp_path_factory.mktemp("incluster") / "data", "--node-name", "in-node",
                         "--service-cidr", cidr)
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.stop()


def _run_pod(kc: Kubectl, ns: str, name: str) -> str:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
           "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
                    "containers": [{"name": "c", "image": "none", "command": [sys.executable, "-c", SCRIPT]}]}}
    kc("apply", "-f", "-", input=json.dumps(pod))

    def finished() -> str | None:
        phase = kc("get", "pod", name, "-n", ns, "-o", "jsonpath={.status.phase}", check=False)
        return phase if phase in ("Succeeded", "Failed") else None

    assert wait_for(finished, 60, message=f"pod {name} to finish") == "Succeeded", kc(
        "logs", name, "-n", ns, check=False)
    return kc("logs", name, "-n", ns)


def test_incluster_config_lists_pods_with_rbac_and_gets_403_without(up: CorralProcess, tmp_path_factory):
    kc = Kubectl(up.kubeconfig, tmp_path_factory.mktemp("kubecache-incluster"))
    wait_for(lambda: "Ready" in kc("get", "node", "in-node", check=False), message="the node to be Ready")
    ns = f"inc-{uuid.uuid4().hex[:8]}"
    kc("create", "namespace", ns)
    wait_for(lambda: "kube-root-ca.crt" in kc("get", "configmap", "-n", ns, check=False),
             message="the root CA published in the new namespace")
    wait_for(lambda: "default" in kc("get", "serviceaccount", "-n", ns, check=False),
             message="the default ServiceAccount")

    denied = _run_pod(kc, ns, "denied")
    assert f"files ['ca.crt', 'namespace', 'token'] {ns}" in denied
    assert "STATUS 403" in denied

    kc("create", "role", "pod-reader", "--verb=list", "--resource=pods", "-n", ns)
    kc("create", "rolebinding", "read-pods", "--role=pod-reader", f"--serviceaccount={ns}:default", "-n", ns)
    allowed = _run_pod(kc, ns, "allowed")
    assert "LISTED ['allowed', 'denied']" in allowed

    spec = json.loads(kc("get", "pod", "allowed", "-n", ns, "-o", "json"))["spec"]
    volume = next(v for v in spec["volumes"] if v["name"].startswith("kube-api-access-"))
    assert spec["containers"][0]["volumeMounts"][-1] == {
        "name": volume["name"], "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": True}
