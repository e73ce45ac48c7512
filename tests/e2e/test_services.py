"""Services end to end with `corral up` and the real kubectl: three backend
pods behind one Service (a named targetPort, since pods share the host's
network in the process runtime and so listen on different ports), a client
pod that finds the Service through the cluster DNS and reaches it through
its virtual IP, readiness and deletion followed, and a NodePort; once per
proxy mode (`--proxy-mode userspace`, and `nftables` when root)."""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
from tests.conftest import CorralProcess, Kubectl, wait_for

from corral.net import nft

pytestmark = pytest.mark.e2e

BACKEND = """
import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = os.environ["HOSTNAME"].encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"""

# Resolves "web" the way a resolver with the pod's search list would, over
# the cluster DNS the agent told it about, then asks the VIP 30 times.
CLIENT = """
import collections, json, os, urllib.request
from dnslib import DNSRecord, RCODE
host, port = os.environ["CORRAL_DNS_SERVER"].split(":")
for domain in os.environ["CORRAL_DNS_SEARCH"].split():
    reply = DNSRecord.parse(DNSRecord.question("web." + domain).send(host, int(port), timeout=2))
    if reply.header.rcode == RCODE.NOERROR and reply.rr:
        name, ip = "web." + domain, str(reply.rr[0].rdata)
        break
seen = collections.Counter(urllib.request.urlopen(f"http://{ip}:80/", timeout=5).read().decode()
                           for _ in range(30))
print(json.dumps({"name": name, "ip": ip, "env": os.environ.get("WEB_SERVICE_HOST"), "seen": seen}))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def backend(name: str, port: int, flags: Path) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "web"}},
            "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
                "name": "http", "image": "python", "command": [sys.executable, "-c", BACKEND],
                "env": [{"name": "PORT", "value": str(port)}],
                "ports": [{"name": "http", "containerPort": port}],
                # the flags directory as a hostPath volume: a pod's root is
                # its own overlay, where files the test adds later need not show
                "volumeMounts": [{"name": "flags", "mountPath": str(flags), "readOnly": True}],
                "readinessProbe": {"exec": {"command": ["sh", "-c", f"test ! -e {flags}/{name}"]},
                                   "periodSeconds": 1}}],
                "volumes": [{"name": "flags", "hostPath": {"path": str(flags)}}]}}


KERNEL = pytest.mark.skipif(os.geteuid() != 0 or not nft.available(), reason="needs root and nft")


def nft_tables() -> str:
    return subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout


@pytest.fixture(scope="module", params=["userspace", pytest.param("nftables", marks=KERNEL)])
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    mode = request.param
    data = tmp_path_factory.mktemp("up-svc") / "data"
    # A service range and node name of our own: other clusters on this
    # machine bind 127.43.x, and the kernel mode's table is named after the node.
    cidr = f"127.{random.randint(100, 199)}.{random.randint(0, 255)}.0/24"
    node = f"svc-node-{mode}-{os.getpid()}"
    proc = CorralProcess("up", data, "--node-name", node, "--service-cidr", cidr, "--proxy-mode", mode)
    try:
        proc.wait_ready()
        k = Kubectl(proc.kubeconfig, tmp_path_factory.mktemp("kubecache-svc"))
        wait_for(lambda: "Ready" in k("get", "node", node, check=False), message="node Ready")
        yield k, mode, nft.table_name(node)
    finally:
        proc.stop()
    if mode == "nftables":
        assert nft.table_name(node) not in nft_tables(), "the kernel mode's table outlived corral"


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=3) as r:
        return r.read().decode()


def ready_ips(kc: Kubectl) -> set[int]:
    ep = json.loads(kc("get", "endpoints", "web", "-o", "json"))
    return {p["port"] for s in ep.get("subsets") or [] for p in s.get("ports") or [] if s.get("addresses")}


def test_service_vip_dns_readiness_deletion_and_node_port(cluster: tuple[Kubectl, str, str]) -> None:
    kc, mode, table = cluster
    flags = Path(tempfile.mkdtemp(prefix="corral-svc-", dir="/var/tmp"))
    try:
        ports = [free_port() for _ in range(3)]
        node_port = random.randint(30000, 32767)
        items = [backend(f"b{i}", p, flags) for i, p in enumerate(ports)]
        items.append({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                      "spec": {"type": "NodePort", "selector": {"app": "web"},
                               "ports": [{"name": "web", "port": 80, "targetPort": "http",
                                          "nodePort": node_port}]}})
        kc("apply", "-f", "-", input="\n".join(json.dumps(item) for item in items))
        wait_for(lambda: ready_ips(kc) == set(ports), timeout=40, message="three ready endpoints")
        slices = kc("get", "endpointslices", "-l", "kubernetes.io/service-name=web")
        assert all(str(p) in slices for p in ports) and "IPv4" in slices, slices
        vip = json.loads(kc("get", "svc", "web", "-o", "json"))["spec"]["clusterIP"]
        if mode == "nftables":  # the VIP is DNATed by the kernel, nobody listens on it
            wait_for(lambda: f"ip daddr {vip} tcp dport 80 dnat" in subprocess.run(
                ["nft", "list", "table", "ip", table], capture_output=True, text=True).stdout,
                timeout=10, message="DNAT rule for the VIP")
        listeners = subprocess.run(["ss", "-Hltn", f"src {vip}"], capture_output=True, text=True).stdout
        assert bool(listeners.strip()) == (mode == "userspace"), listeners

        client = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client"},
                  "spec": {"restartPolicy": "Never", "containers": [{
                      "name": "c", "image": "python", "command": [sys.executable, "-c", CLIENT]}]}}
        kc("apply", "-f", "-", input=json.dumps(client))
        wait_for(lambda: json.loads(kc("get", "pod", "client", "-o", "json"))["status"].get("phase")
                 in ("Succeeded", "Failed"), timeout=40, message="client pod finished")
        report = json.loads(kc("logs", "client").strip().splitlines()[-1])
        assert report["name"] == "web.default.svc.cluster.local" and report["ip"] == vip
        assert report["env"] == vip  # WEB_SERVICE_HOST
        assert report["seen"] == {"b0": 10, "b1": 10, "b2": 10}, report

        # b0 turns unready: it leaves the endpoints and gets no new connection
        (flags / "b0").touch()
        wait_for(lambda: ready_ips(kc) == set(ports[1:]), timeout=20, message="b0 unready")
        wait_for(lambda: "b0" not in {get(f"http://{vip}/") for _ in range(6)}, timeout=10,
                 message="proxy stops sending to b0")
        assert set(Counter(get(f"http://{vip}/") for _ in range(20))) == {"b1", "b2"}

        # b1 is deleted: the service keeps answering from b2
        kc("delete", "pod", "b1", "--wait=false")
        wait_for(lambda: {get(f"http://{vip}/") for _ in range(6)} == {"b2"}, timeout=20,
                 message="deleted backend gone")
        assert get(f"http://127.0.0.1:{node_port}/") == "b2"  # NodePort on the node's address
    finally:
        shutil.rmtree(flags, ignore_errors=True)
