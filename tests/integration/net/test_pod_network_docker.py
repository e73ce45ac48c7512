"""Docker pods on the pod network: a `corral agent` on a network-namespace
host with the Docker runtime gives a two-container pod one sandbox (its
network namespace on the node's bridge, an address from the node's range):
both containers share localhost and the pod's resolv.conf, the node reaches
the pod at its address, a restarted agent adopts the pod's sandbox (no new
sandbox, no new address), and a deleted pod takes its sandbox and address
with it."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from corral.client.api import ApiClient
from corral.client.errors import NotFoundError
from corral.client.resources import NODES, PODS
from corral.net.cni import find_plugin_dir
from corral.runtime.docker import OWNER_LABEL, SANDBOX
from corral.testing_hosts import CorralHosts, HostNet
from fixtures.agent_cluster import eventually
from fixtures.dockerd import Dockerd, shared_dockerd

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("nft") is None
    or find_plugin_dir() is None,
    reason="needs root, iproute2, nft and containernetworking-plugins")

SERVE = "mkdir -p /w && echo -n served > /w/index.html && exec httpd -f -p 8080 -h /w"
ASK = ("until wget -qO- http://127.0.0.1:8080/ > /tmp/got 2>/dev/null; do sleep 0.2; done; "
       "echo \"local=$(cat /tmp/got) $(grep nameserver /etc/resolv.conf)\"; exec sleep 100000")


@pytest.fixture(scope="module")
def dockerd() -> Iterator[Dockerd]:
    yield from shared_dockerd()


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory, dockerd: Dockerd) -> Iterator[CorralHosts]:
    work = tmp_path_factory.mktemp("podnet-docker")
    with HostNet(2) as net:
        cluster = CorralHosts(net, work, server_args=("--service-cidr", "198.18.161.0/24",
                                                      "--cluster-cidr", "198.18.32.0/20"))
        try:
            cluster.start_server()
            cluster.start_agent(1, extra=AGENT_ARGS, env={"DOCKER_HOST": dockerd.base_url})
            yield cluster
        finally:
            cluster.close()
            _remove_owned(dockerd, str((work / "node-1").resolve()))


AGENT_ARGS = ("--pod-network", "cni", "--default-runtime", "docker")


def _remove_owned(dockerd: Dockerd, owner: str) -> None:
    client = dockerd.client()
    try:
        for c in client.containers.list(all=True, filters={"label": f"{OWNER_LABEL}={owner}"}):
            c.remove(force=True)
    finally:
        client.close()


@pytest.fixture
async def api(hosts: CorralHosts) -> AsyncIterator[ApiClient]:
    async with ApiClient.from_kubeconfig(str(hosts.kubeconfig)) as client:
        async def ready() -> bool:
            try:
                node = await client.get(NODES, "node-1")
            except NotFoundError:
                return False
            return bool((node.get("spec") or {}).get("podCIDR"))
        await eventually(ready, 60, "node-1 with a pod range")
        yield client


def sandboxes(dockerd: Dockerd, owner: str) -> list[Any]:
    client = dockerd.client()
    try:
        return list(client.containers.list(all=True, filters={"label": [
            f"{OWNER_LABEL}={owner}", f"{SANDBOX}=true"]}))
    finally:
        client.close()


async def from_node(hosts: CorralHosts, url: str) -> str:
    """What ``url`` answers on the node, once it answers (a container that
    runs may not listen yet)."""
    code = f"import urllib.request; print(urllib.request.urlopen({url!r}, timeout=5).read().decode())"

    async def ask() -> str:
        proc = await asyncio.to_thread(
            subprocess.run, ["ip", "netns", "exec", hosts.agent_host(1).netns, sys.executable, "-c", code],
            capture_output=True, text=True, timeout=30)
        return proc.stdout.strip() if proc.returncode == 0 else ""
    return str(await eventually(ask, 20, f"{url} to answer on the node"))


async def test_docker_pod_sandbox_network_adoption_and_removal(
        api: ApiClient, hosts: CorralHosts, dockerd: Dockerd) -> None:
    owner = str((hosts.workdir / "node-1").resolve())
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "duo"}, "spec": {
        "nodeName": "node-1", "terminationGracePeriodSeconds": 1,
        "tolerations": [{"key": k, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
                        for k in ("node.kubernetes.io/unreachable", "node.kubernetes.io/not-ready")],
        "containers": [
            {"name": "serve", "image": dockerd.image, "imagePullPolicy": "Never",
             "command": ["sh", "-c", SERVE]},
            {"name": "ask", "image": dockerd.image, "imagePullPolicy": "Never",
             "command": ["sh", "-c", ASK]}]}}
    await api.create(PODS, body, "default")

    async def running() -> Any:
        pod = await api.get(PODS, "duo", "default")
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        return len(statuses) == 2 and all("running" in s["state"] for s in statuses) and pod
    pod = await eventually(running, 60, "both containers running")
    node = await api.get(NODES, "node-1")
    ip = pod["status"]["podIP"]
    assert ipaddress.ip_address(ip) in ipaddress.ip_network(node["spec"]["podCIDR"])
    gateway = str(next(ipaddress.ip_network(node["spec"]["podCIDR"]).hosts()))
    assert await from_node(hosts, f"http://{ip}:8080/") == "served"
    log_dir = hosts.workdir / "node-1" / "logs" / f"default_duo_{pod['metadata']['uid']}" / "ask"

    async def said() -> str:
        files = list(log_dir.glob("*.log"))
        return files[0].read_text() if files else ""
    line = await eventually(said, 20, "the second container to reach the first on localhost")
    assert f"local=served nameserver {gateway}" in line
    (sandbox,) = sandboxes(dockerd, owner)

    # the agent dies and comes back: same sandbox, same address (its fence
    # may have stopped the app containers meanwhile: they come back in it)
    hosts.net.kill(hosts.agents["node-1"])
    hosts.start_agent(1, extra=AGENT_ARGS, env={"DOCKER_HOST": dockerd.base_url})
    await asyncio.sleep(3)
    pod = await eventually(running, 30, "the pod running after the agent's restart")
    assert pod["status"]["podIP"] == ip
    assert [s.id for s in sandboxes(dockerd, owner)] == [sandbox.id]
    assert await from_node(hosts, f"http://{ip}:8080/") == "served"

    await api.delete(PODS, "duo", "default")

    async def gone() -> bool:
        try:
            await api.get(PODS, "duo", "default")
            return False
        except NotFoundError:
            return not sandboxes(dockerd, owner)
    await eventually(gone, 30, "pod and sandbox gone")
    ipam = hosts.workdir / "node-1" / "podnet" / "ipam" / "corral"
    assert not [p for p in ipam.glob("198.*")], "the address was not released"
    state = list((hosts.workdir / "node-1" / "podnet" / "pods").glob("*.json"))
    assert state == [], json.dumps([p.name for p in state])
