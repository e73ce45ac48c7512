"""The pod network on three machines: a `corral server` and three `corral
agent`s, each in its own network-namespace host (198.18.200+.x), every pod
in a network namespace of its own with an address from its node's podCIDR
(CNI bridge + host-local), routes between the nodes' ranges, and services
through the kernel proxy (nftables) on a non-loopback VIP range.

One story, in order: backends on every node (two on one node, both on the
same port), a client pod that resolves the service through the resolv.conf
the agent gave it and spreads requests over backends on three hosts through
the VIP; the NodePort on every host; a backend that turns unready gets no
new connections; a node that loses power takes its backends out of the
service, which keeps answering.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from corral.client.api import ApiClient
from corral.client.resources import DEPLOYMENTS, ENDPOINTS, NODES, PODS, SERVICES
from corral.net.cni import find_plugin_dir
from corral.testing_hosts import CorralHosts, HostNet
from fixtures.agent_cluster import eventually

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("nft") is None
    or find_plugin_dir() is None,
    reason="pod network hosts need root, iproute2, nft and containernetworking-plugins")

AGENTS = 3
NODE_NAMES = [f"node-{i}" for i in range(1, AGENTS + 1)]
SERVICE_CIDR = "198.18.160.0/24"
CLUSTER_CIDR = "198.18.16.0/20"
PORT = 8080
NODE_PORT = 31080
HOST_PORT = 18080

BACKEND = """
import http.server, socket
ready = True
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        global ready
        if self.path == "/unready":
            ready = False
        code = 503 if self.path == "/healthz" and not ready else 200
        body = socket.gethostname().encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("0.0.0.0", PORT), H).serve_forever()
""".replace("PORT", str(PORT))

# Resolves "web" as a stub resolver would: the nameserver and search list
# of the pod's own /etc/resolv.conf, port 53.
CLIENT = """
import collections, json, os, urllib.request
from dnslib import DNSRecord, RCODE
conf = open("/etc/resolv.conf").read().split("\\n")
server = next(l.split()[1] for l in conf if l.startswith("nameserver"))
search = next(l.split()[1:] for l in conf if l.startswith("search"))
for domain in search:
    reply = DNSRecord.parse(DNSRecord.question("web." + domain).send(server, 53, timeout=2))
    if reply.header.rcode == RCODE.NOERROR and reply.rr:
        name, ip = "web." + domain, str(reply.rr[0].rdata)
        break
seen = collections.Counter(urllib.request.urlopen(f"http://{ip}/", timeout=5).read().decode()
                           for _ in range(40))
print(json.dumps({"server": server, "name": name, "ip": ip, "seen": seen,
                  "env": os.environ.get("CORRAL_DNS_SERVER")}))
"""


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CorralHosts]:
    work = tmp_path_factory.mktemp("podnet")
    with HostNet(AGENTS + 1) as net:
        cluster = CorralHosts(net, work, server_args=("--service-cidr", SERVICE_CIDR,
                                                      "--cluster-cidr", CLUSTER_CIDR))
        try:
            cluster.start_server()
            for i in range(1, AGENTS + 1):
                cluster.start_agent(i, extra=("--pod-network", "cni", "--proxy-mode", "nftables"))
            yield cluster
        finally:
            cluster.close()


@pytest.fixture
async def api(hosts: CorralHosts) -> AsyncIterator[ApiClient]:
    async with ApiClient.from_kubeconfig(str(hosts.kubeconfig)) as client:
        await eventually(lambda: nodes_ready(client), 60, "every node Ready with a pod range")
        yield client


async def nodes_ready(api: ApiClient) -> bool:
    nodes = {n["metadata"]["name"]: n for n in (await api.list(NODES))["items"]}
    for name in NODE_NAMES:
        node = nodes.get(name)
        if node is None or not (node.get("spec") or {}).get("podCIDR"):
            return False
        conds = {c["type"]: c["status"] for c in (node.get("status") or {}).get("conditions") or []}
        if conds.get("Ready") != "True":
            return False
    return True


def web(replicas: int) -> dict[str, Any]:
    # httpGet to the pod's own address: the agent reaches it over the bridge
    probe = {"httpGet": {"path": "/healthz", "port": PORT}, "periodSeconds": 1}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                     "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "http", "image": "python",
                                     "command": [sys.executable, "-c", BACKEND],
                                     "ports": [{"name": "http", "containerPort": PORT}],
                                     "readinessProbe": probe}]}}},
    }


SERVICE = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
           "spec": {"type": "NodePort", "selector": {"app": "web"},
                    "ports": [{"port": 80, "targetPort": "http", "nodePort": NODE_PORT}]}}


async def ready_pods(api: ApiClient) -> list[dict[str, Any]]:
    pods = (await api.list(PODS, "default", label_selector="app=web"))["items"]
    out = []
    for p in pods:
        conds = {c["type"]: c["status"] for c in (p.get("status") or {}).get("conditions") or []}
        if conds.get("Ready") == "True" and not p["metadata"].get("deletionTimestamp"):
            out.append(p)
    return out


async def endpoint_ips(api: ApiClient) -> set[str]:
    ep = await api.get(ENDPOINTS, "web", "default")
    return {a["ip"] for s in ep.get("subsets") or [] for a in s.get("addresses") or []}


async def fetch(url: str) -> str | None:
    def get() -> str | None:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return str(r.read().decode())
        except OSError:
            return None
    return await asyncio.to_thread(get)


async def run_client(api: ApiClient, hosts: CorralHosts, name: str, node: str) -> dict[str, Any]:
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"restartPolicy": "Never", "nodeName": node, "containers": [{
                "name": "c", "image": "python", "command": [sys.executable, "-c", CLIENT]}]}}
    await api.create(PODS, body, "default")

    async def finished() -> Any:
        pod = await api.get(PODS, name, "default")
        return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed") and pod
    pod = await eventually(finished, 30, f"client pod {name} to finish")
    uid = pod["metadata"]["uid"]
    log = (hosts.workdir / node / "logs" / f"default_{name}_{uid}" / "c" / "0.log").read_text()
    assert pod["status"]["phase"] == "Succeeded", (pod["status"], log)
    return json.loads(log.strip().splitlines()[-1].split(" ", 3)[3])  # CRI log: TIME STREAM F LINE


async def test_pods_reach_services_across_three_hosts(api: ApiClient, hosts: CorralHosts) -> None:
    nodes = {n["metadata"]["name"]: n for n in (await api.list(NODES))["items"]}
    ranges = {name: ipaddress.ip_network(nodes[name]["spec"]["podCIDR"]) for name in NODE_NAMES}
    assert len(set(ranges.values())) == AGENTS
    assert {nodes[n]["metadata"]["annotations"]["corral.dev/pod-network"] for n in NODE_NAMES} == {"cni"}
    assert all(r.subnet_of(ipaddress.ip_network(CLUSTER_CIDR)) for r in ranges.values())  # type: ignore[arg-type]

    await api.create(SERVICES, SERVICE, "default")
    await api.create(DEPLOYMENTS, web(4), "default")
    pods = await eventually(lambda: _all_ready(api, 4), 45, "4 ready web pods")
    per_node: dict[str, list[dict[str, Any]]] = {}
    for p in pods:
        per_node.setdefault(p["spec"]["nodeName"], []).append(p)
        ip = ipaddress.ip_address(p["status"]["podIP"])
        assert ip in ranges[p["spec"]["nodeName"]], (p["metadata"]["name"], ip)
        assert p["status"]["hostIP"] != p["status"]["podIP"]
    assert len(per_node) == AGENTS, {n: len(v) for n, v in per_node.items()}
    # pigeonhole: one node runs two replicas, both listening on port 8080
    assert max(len(v) for v in per_node.values()) == 2
    await eventually(lambda: _endpoints_are(api, {p["status"]["podIP"] for p in pods}), 20, "4 endpoints")

    report = await run_client(api, hosts, "client", "node-1")
    vip = (await api.get(SERVICES, "web", "default"))["spec"]["clusterIP"]
    assert report["name"] == "web.default.svc.cluster.local" and report["ip"] == vip, report
    node_of = {p["metadata"]["name"]: p["spec"]["nodeName"] for p in pods}
    assert set(report["seen"]) == set(node_of), report  # every backend answered
    assert {node_of[name] for name in report["seen"]} == set(NODE_NAMES)
    assert report["server"] == str(next(ranges["node-1"].hosts()))  # the pod's gateway
    assert report["env"] == f"{report['server']}:53"

    for i in range(1, AGENTS + 1):  # the NodePort on every host
        assert await fetch(f"http://{hosts.agent_host(i).ip}:{NODE_PORT}/") in node_of
    # a hostPort (CNI portmap) on the pod's node only
    hp = web(1)["spec"]["template"]["spec"]
    hp["containers"][0]["ports"][0]["hostPort"] = HOST_PORT
    await api.create(PODS, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "hp"},
                            "spec": {**hp, "nodeName": "node-3"}}, "default")
    assert await eventually(lambda: fetch(f"http://{hosts.agent_host(3).ip}:{HOST_PORT}/"), 20,
                       "the hostPort to answer") == "hp"
    await api.delete(PODS, "hp", "default")

    # a backend turns unready: out of the endpoints, no new connection
    unready = pods[0]["metadata"]["name"]
    host = hosts.agent_host(int(pods[0]["spec"]["nodeName"].rsplit("-", 1)[1]))
    subprocess.run(["ip", "netns", "exec", host.netns, sys.executable, "-c", "import urllib.request; "
                    f"urllib.request.urlopen('http://{pods[0]['status']['podIP']}:{PORT}/unready')"],
                   check=True, timeout=20)
    await eventually(lambda: _endpoints_are(api, {p["status"]["podIP"] for p in pods[1:]}), 20,
                f"{unready} out of the endpoints")
    await eventually(lambda: _answers_only(hosts, set(node_of) - {unready}, 1), 10, "the proxy to skip it")

    # a node loses power: its backends leave, the service keeps answering
    victim = next(n for n in NODE_NAMES if n != "node-1" and n != node_of[unready])
    hosts.kill_node(int(victim.rsplit("-", 1)[1]))
    left = {name for name, node in node_of.items() if node != victim and name != unready}
    await eventually(lambda: _answers_only(hosts, left, 1), 30, f"answers only from {sorted(left)}")


async def _all_ready(api: ApiClient, n: int) -> list[dict[str, Any]] | None:
    pods = await ready_pods(api)
    return pods if len(pods) >= n else None


async def _endpoints_are(api: ApiClient, ips: set[str]) -> bool:
    return await endpoint_ips(api) == ips


async def _answers_only(hosts: CorralHosts, names: set[str], node_index: int) -> bool:
    url = f"http://{hosts.agent_host(node_index).ip}:{NODE_PORT}/"
    seen = [await fetch(url) for _ in range(12)]
    return set(seen) == names  # every one answers, nobody else (no failures either)
