"""`corral up --pod-network cni` on this machine, with the real kubectl: two
replicas on one port (each pod has its own address), a client pod that
finds the Service by name through the resolv.conf it was given (the C
library's resolver, search list and all) and reaches both replicas through
the VIP on the same bridge (hairpin), and nothing left behind after."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys

import pytest
from tests.conftest import CorralProcess, Kubectl, wait_for

from corral.net.cni import find_plugin_dir
from corral.net.podnet import names, remove_node_network

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("nft") is None or find_plugin_dir() is None,
    reason="needs root, nft and containernetworking-plugins")]

NODE = "pn-up-node"
SERVE = "import http.server as h, socket\n" \
    "class H(h.BaseHTTPRequestHandler):\n" \
    "    def do_GET(self):\n" \
    "        b = socket.gethostname().encode(); self.send_response(200)\n" \
    "        self.send_header('Content-Length', str(len(b))); self.end_headers(); self.wfile.write(b)\n" \
    "h.HTTPServer(('0.0.0.0', 8080), H).serve_forever()\n"
ASK = "import urllib.request\n" \
    "print(sorted({urllib.request.urlopen('http://web/', timeout=3).read().decode() for _ in range(8)}))\n"


def test_up_with_pod_network(tmp_path_factory: pytest.TempPathFactory) -> None:
    data = tmp_path_factory.mktemp("up-podnet") / "data"
    # ranges of our own: other clusters on this machine may use others
    third = random.randint(64, 127)
    args = ("--node-name", NODE, "--pod-network", "cni", "--proxy-mode", "nftables",
            "--service-cidr", f"198.18.{random.randint(164, 191)}.0/24",
            "--cluster-cidr", f"198.18.{third}.0/24")
    proc = CorralProcess("up", data, *args)
    try:
        proc.wait_ready()
        kc = Kubectl(proc.kubeconfig, tmp_path_factory.mktemp("kubecache-podnet"))
        wait_for(lambda: "Ready" in kc("get", "node", NODE, check=False), message="node Ready")
        web = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
               "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                            "terminationGracePeriodSeconds": 1, "containers": [{
                                "name": "http", "image": "python", "command": [sys.executable, "-c", SERVE],
                                "ports": [{"containerPort": 8080}],
                                "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}]}}}}
        svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
               "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}
        kc("apply", "-f", "-", input="\n".join(json.dumps(o) for o in (web, svc)))

        def two_ready() -> list[str]:
            pods = json.loads(kc("get", "pods", "-l", "app=web", "-o", "json"))["items"]
            ready = [p for p in pods if any(c["type"] == "Ready" and c["status"] == "True"
                                            for c in p["status"].get("conditions", []))]
            return [p["status"]["podIP"] for p in ready] if len(ready) == 2 else []
        ips = wait_for(two_ready, timeout=40, message="two ready replicas")
        assert len(set(ips)) == 2 and all(ip.startswith(f"198.18.{third}.") for ip in ips), ips

        client = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client"},
                  "spec": {"restartPolicy": "Never", "containers": [{
                      "name": "c", "image": "python", "command": [sys.executable, "-c", ASK]}]}}
        kc("apply", "-f", "-", input=json.dumps(client))
        wait_for(lambda: json.loads(kc("get", "pod", "client", "-o", "json"))["status"].get("phase")
                 in ("Succeeded", "Failed"), timeout=30, message="client pod finished")
        names_seen = kc("logs", "client").strip().splitlines()[-1]
        pods = json.loads(kc("get", "pods", "-l", "app=web", "-o", "json"))["items"]
        assert names_seen == str(sorted(p["metadata"]["name"] for p in pods))

        kc("delete", "deployment,service", "web", "--wait=false")
        kc("delete", "pod", "client")
        wait_for(lambda: not json.loads(kc("get", "pods", "-o", "json"))["items"], timeout=30,
                 message="pods gone")
        state = data / "agent" / "podnet" / "pods"  # and the agent done tearing them down
        wait_for(lambda: not list(state.glob("*.json")), timeout=30, message="pod networks released")
    finally:
        proc.stop()
        leftovers = remove_node_network(NODE, data / "agent" / "podnet")
    assert leftovers == [], f"the agent left {leftovers} behind"
    bridge, _ = names(NODE)
    assert subprocess.run(["ip", "link", "show", bridge], capture_output=True).returncode != 0
