"""Many machines, for real: a `corral server` and three `corral agent`s, each
in its own network namespace (198.18.x), killed, frozen and cut off.

Every test checks from /proc on every host that a workload never has more
copies running than it is allowed, whatever the API says.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from corral.client.api import ApiClient
from corral.client.errors import NotFoundError
from corral.client.resources import DEPLOYMENTS, NODES, PODS
from corral.testing_hosts import CorralHosts, HostNet, OverlapMonitor, running_containers

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None, reason="test hosts need root and iproute2"
)

AGENTS = 3
NODE_NAMES = [f"node-{i}" for i in range(1, AGENTS + 1)]


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CorralHosts]:
    work = tmp_path_factory.mktemp("hosts")
    with HostNet(AGENTS + 1) as net:
        cluster = CorralHosts(net, work)
        try:
            cluster.start_server()
            for i in range(1, AGENTS + 1):
                cluster.start_agent(i)
            yield cluster
        finally:
            cluster.close()  # pods and the agents' state tmpfs mounts, before the namespaces go


@pytest.fixture
async def api(hosts: CorralHosts) -> AsyncIterator[ApiClient]:
    async with ApiClient.from_kubeconfig(str(hosts.kubeconfig)) as client:
        await until(lambda: all_ready(client), 60, "every node Ready")
        yield client


async def until(pred: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await pred()
        if value:
            return value
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


async def all_ready(api: ApiClient) -> bool:
    nodes = {n["metadata"]["name"]: n for n in (await api.list(NODES))["items"]}
    for name in NODE_NAMES:
        node = nodes.get(name)
        if node is None:
            return False
        taints = (node.get("spec") or {}).get("taints") or []
        if any(t["key"].startswith("node.kubernetes.io/") for t in taints):
            return False
        conds = {c["type"]: c["status"] for c in (node.get("status") or {}).get("conditions") or []}
        if conds.get("Ready") != "True":
            return False
    return True


def deployment(name: str, replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"terminationGracePeriodSeconds": 1,
                                       "containers": [{"name": "c", "image": "sleep",
                                                       "command": ["sleep", "100000"]}]}}},
    }


async def running(api: ApiClient, app: str) -> list[dict[str, Any]]:
    pods = (await api.list(PODS, "default", label_selector=f"app={app}"))["items"]
    return [p for p in pods if (p.get("status") or {}).get("phase") == "Running"
            and not p["metadata"].get("deletionTimestamp")]


class Workload:
    """A Deployment, and a watch from /proc on how many copies run."""

    def __init__(self, api: ApiClient, hosts: CorralHosts, name: str, replicas: int) -> None:
        self.api, self.hosts, self.name, self.replicas = api, hosts, name, replicas
        dirs = [hosts.workdir / n for n in NODE_NAMES]
        self.monitor = OverlapMonitor(dirs, replicas, f"{name}-")

    async def __aenter__(self) -> Workload:
        await self.api.create(DEPLOYMENTS, deployment(self.name, self.replicas), "default")
        await until(self.all_running, 60, f"{self.replicas} running {self.name} pods")
        self.monitor.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.monitor.stop()
        await self.api.delete(DEPLOYMENTS, self.name, "default", propagation_policy="Foreground")
        await until(self.none_left, 60, f"{self.name} pods gone")

    async def all_running(self, avoid: str = "") -> bool:
        pods = [p for p in await running(self.api, self.name) if p["spec"]["nodeName"] != avoid]
        return len(pods) >= self.replicas

    async def none_left(self) -> bool:
        pods = (await self.api.list(PODS, "default", label_selector=f"app={self.name}"))["items"]
        return not pods and self.monitor.count() == 0

    async def busiest_node(self) -> str:
        per: dict[str, int] = {}
        for pod in await running(self.api, self.name):
            per[pod["spec"]["nodeName"]] = per.get(pod["spec"]["nodeName"], 0) + 1
        return max(per, key=lambda n: per[n])

    def copies_on(self, node: str) -> int:
        return sum(1 for name, _, _ in running_containers(self.hosts.workdir / node)
                   if name.startswith(f"{self.name}-"))

    def assert_never_too_many(self) -> None:
        assert self.monitor.samples > 10
        assert self.monitor.overlaps == 0, (
            f"up to {self.monitor.most} copies ran at once; {self.replicas} allowed")


def index_of(node: str) -> int:
    return int(node.rsplit("-", 1)[1])


async def test_nodes_joined_with_a_join_token_and_announce_fencing(api: ApiClient,
                                                                   hosts: CorralHosts) -> None:
    nodes = {n["metadata"]["name"]: n for n in (await api.list(NODES))["items"]}
    assert set(NODE_NAMES) <= set(nodes)
    for i, name in enumerate(NODE_NAMES, start=1):
        node = nodes[name]
        assert node["metadata"]["annotations"]["corral.dev/fence-timeout-seconds"] == "1.8"
        addresses = {a["type"]: a["address"] for a in node["status"]["addresses"]}
        assert addresses["InternalIP"] == hosts.agent_host(i).ip
    assert hosts.join_token and not hosts.join_token.startswith(hosts.server_dir.name)


async def test_kill9_agent_pods_replaced_and_old_copies_fenced(api: ApiClient,
                                                               hosts: CorralHosts) -> None:
    async with Workload(api, hosts, "killed", 6) as work:
        victim = await work.busiest_node()
        node_uid = (await api.get(NODES, victim))["metadata"]["uid"]
        t0 = time.monotonic()
        hosts.net.kill(hosts.agents[victim])  # its containers live on, orphaned
        await until(lambda: work.all_running(avoid=victim), 20, "replacements")
        took = time.monotonic() - t0
        assert work.copies_on(victim) == 0  # the watchdog fenced them
        work.assert_never_too_many()
        assert took < 10, f"failover took {took:.1f}s"
        # The same machine comes back under the same name: it resumes.
        hosts.start_agent(index_of(victim), victim)
        await until(lambda: all_ready(api), 60, f"{victim} Ready again")
        assert (await api.get(NODES, victim))["metadata"]["uid"] == node_uid


async def test_partition_never_runs_more_copies_than_allowed(api: ApiClient,
                                                             hosts: CorralHosts) -> None:
    async with Workload(api, hosts, "cut", 6) as work:
        victim = await work.busiest_node()
        old = {p["metadata"]["uid"] for p in await running(api, "cut")
               if p["spec"]["nodeName"] == victim}
        hosts.net.partition(hosts.agent_host(index_of(victim)))
        try:
            await until(lambda: work.all_running(avoid=victim), 20, "replacements")
            assert work.copies_on(victim) == 0
            node = await api.get(NODES, victim)
            assert ("node.kubernetes.io/unreachable", "NoExecute") in {
                (t["key"], t["effect"]) for t in node["spec"]["taints"]}
        finally:
            hosts.net.heal(hosts.agent_host(index_of(victim)))
        await until(lambda: all_ready(api), 60, f"{victim} back")
        # Rejoined, it runs nothing that is no longer bound to it.
        await asyncio.sleep(1.0)
        assert work.copies_on(victim) == 0
        for uid in old:
            with pytest.raises(NotFoundError):
                await _pod_by_uid(api, uid)
        work.assert_never_too_many()


async def test_frozen_agent_is_fenced_and_recovers(api: ApiClient, hosts: CorralHosts) -> None:
    async with Workload(api, hosts, "frozen", 6) as work:
        victim = await work.busiest_node()
        agent = hosts.agents[victim]
        hosts.net.freeze(agent)
        try:
            await until(lambda: work.all_running(avoid=victim), 20, "replacements")
            assert work.copies_on(victim) == 0
        finally:
            hosts.net.thaw(agent)
        await until(lambda: all_ready(api), 60, f"{victim} back")
        await asyncio.sleep(1.0)
        assert work.copies_on(victim) == 0
        work.assert_never_too_many()


async def test_drain_moves_pods_and_deleting_a_node_evicts(api: ApiClient, hosts: CorralHosts,
                                                           tmp_path: Path) -> None:
    import subprocess

    env = {**os.environ, "KUBECONFIG": str(hosts.kubeconfig)}

    def kubectl(*args: str) -> str:
        out = subprocess.run(["kubectl", f"--cache-dir={tmp_path}", *args], env=env,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        return out.stdout

    async with Workload(api, hosts, "drained", 4) as work:
        victim = await work.busiest_node()
        kubectl("drain", victim, "--ignore-daemonsets", "--timeout=60s")
        assert (await api.get(NODES, victim))["spec"]["unschedulable"] is True
        await until(lambda: work.all_running(avoid=victim), 30, "pods moved off the drained node")
        assert work.copies_on(victim) == 0
        kubectl("uncordon", victim)
        await until(lambda: all_ready(api), 30, "uncordoned")

        victim = await work.busiest_node()
        kubectl("delete", "node", victim)
        await until(lambda: work.all_running(avoid=victim), 30, "pods of the deleted node moved")
        # Its agent is alive: it stopped the pods and registers the node again.
        await until(lambda: all_ready(api), 60, f"{victim} registered again")
        assert work.copies_on(victim) == 0


async def _pod_by_uid(api: ApiClient, uid: str) -> dict[str, Any]:
    for pod in (await api.list(PODS, "default"))["items"]:
        if pod["metadata"]["uid"] == uid:
            return pod
    raise NotFoundError(404, "NotFound", f"no pod with uid {uid}", {})


async def test_token_created_while_the_server_runs_joins_a_new_machine(
        api: ApiClient, hosts: CorralHosts) -> None:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "corral.cli.main", "token", "create",
                          "--data-dir", str(hosts.server_dir)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    token = out.stdout.strip()
    assert token and token != hosts.join_token
    host = hosts.agent_host(1)
    extra = hosts.net.spawn(
        host,
        [sys.executable, "-m", "corral.cli.main", "agent", "--server", hosts.url, "--token", token,
         "--ca-file", str(hosts.ca_file), "--name", "extra", "--address", host.ip,
         "--port", "10251", "--data-dir", str(hosts.workdir / "extra")],
        log=hosts.workdir / "extra.log")
    try:
        async def joined() -> bool:
            try:
                node = await api.get(NODES, "extra")
            except NotFoundError:
                return False
            return any(c["type"] == "Ready" and c["status"] == "True"
                       for c in (node.get("status") or {}).get("conditions") or [])

        await until(joined, 60, "the new machine's node")
    finally:
        hosts.net.kill(extra)
    await api.delete(NODES, "extra")


async def test_a_new_machine_under_a_dead_ones_name_takes_its_place(
        api: ApiClient, hosts: CorralHosts) -> None:
    import sys

    dead = "node-3"
    hosts.net.kill(hosts.agents[dead])
    host = hosts.agent_host(1)  # another machine, a fresh disk
    stand_in = hosts.net.spawn(
        host,
        [sys.executable, "-m", "corral.cli.main", "agent", "--server", hosts.url, "--token",
         hosts.join_token, "--ca-file", str(hosts.ca_file), "--name", dead, "--address", host.ip,
         "--port", "10252", "--data-dir", str(hosts.workdir / "stand-in")],
        log=hosts.workdir / "stand-in.log")
    try:
        async def moved() -> bool:
            node = await api.get(NODES, dead)
            addresses = {a["type"]: a["address"] for a in node["status"]["addresses"]}
            return addresses.get("InternalIP") == host.ip and await all_ready(api)

        await until(moved, 60, f"{dead} registered from {host.ip}")
    finally:
        hosts.net.kill(stand_in)
    hosts.start_agent(3, dead)  # and back to the original machine
    await until(lambda: all_ready(api), 60, f"{dead} back on its own machine")
