"""Putting the components together: control plane and a local agent.

Each component runs as a task owned by the context manager that started it,
talks to the API only through its own ApiClient, and is logged when it dies
so a crash is never silent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from corral.api.bootstrap import RunningServer

log = logging.getLogger(__name__)


def _watch_task(name: str, coro: Awaitable[Any]) -> asyncio.Task[Any]:
    task = asyncio.ensure_future(coro)
    task.set_name(name)

    def report(t: asyncio.Task[Any]) -> None:
        if not t.cancelled() and t.exception() is not None:
            log.error("%s stopped with an error", name, exc_info=t.exception())

    task.add_done_callback(report)
    return task


class _Components:
    """Owns a set of component tasks and their clients."""

    def __init__(self) -> None:
        self.tasks: list[asyncio.Task[Any]] = []
        self.closers: list[Callable[[], Awaitable[None]]] = []

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(BaseException):
                await task
        for close in reversed(self.closers):
            with contextlib.suppress(Exception):
                await close()
        self.tasks.clear()
        self.closers.clear()


class ControlPlane(_Components):
    """Controllers and the scheduler, each with its own client to the server
    for writes, reading through one set of shared informers.

    With ``leader_elect`` they run only while this server holds the
    controller-manager Lease (client/leaderelection.py): each term starts
    them afresh, and they are cancelled and awaited before the Lease is
    released or its renew deadline passes, so two servers never both act.
    """

    def __init__(self, server: RunningServer, *, leader_elect: bool = False,
                 election: Any = None, node_lifecycle: Any = None,
                 scheduler_profiles: Any = None, cluster_cidr: str | None = None) -> None:
        super().__init__()
        self.server = server
        self.node_lifecycle = node_lifecycle  # a NodeLifecycleConfig; None = defaults
        self.scheduler_profiles = scheduler_profiles  # scheduler Profiles; None = $CORRAL_SCHEDULER_CONFIG
        self.cluster_cidr = cluster_cidr  # pods' ranges (controllers/nodeipam.py); None = default
        self.leader_elect = leader_elect
        self.election = election  # a LeaderElectionConfig; None = defaults
        self.elector: Any = None

    def _client(self, agent: str, owner: _Components | None = None) -> Any:
        from corral.client.api import ApiClient

        socket = self.server.component_socket()
        if socket is not None:  # same process, or one of its API workers: no TLS
            client = ApiClient("http://localhost", token=self.server.token, user_agent=agent,
                               unix_socket=str(socket))
        else:
            client = ApiClient(self.server.url, token=self.server.token, ca_file=str(self.server.ca_file),
                               user_agent=agent)
        (owner or self).closers.append(client.close)
        return client

    def _start_components(self, owner: _Components) -> None:
        """The controller manager and the scheduler over one set of informers
        (one watch and one decode per event, one cache), made afresh for each
        term; each writes through its own client, under its own name."""
        from corral.controllers.informers import SharedInformers
        from corral.controllers.manager import ControllerManager
        from corral.scheduler.scheduler import Scheduler

        clock = self.server.clock
        informers = SharedInformers(self._client("corral-shared-informers", owner), clock=clock)
        manager = ControllerManager(self._client("corral-controller-manager", owner), clock=clock,
                                    node_lifecycle=self.node_lifecycle, informers=informers,
                                    **({"cluster_cidr": self.cluster_cidr} if self.cluster_cidr else {}))
        scheduler = Scheduler(self._client("corral-scheduler", owner), clock=clock,
                              profiles=self.scheduler_profiles, informers=informers)
        owner.tasks.append(_watch_task("controller-manager", manager.run()))
        owner.tasks.append(_watch_task("scheduler", scheduler.run()))
        manager.add_api_publishers(**api_publishing(self.server))  # before the task first runs

    async def _lead(self) -> None:
        """One term as leader: until cancelled (or a component dies)."""
        term = _Components()
        try:
            self._start_components(term)
            await asyncio.gather(*term.tasks)
        finally:
            await asyncio.shield(term.stop())

    async def __aenter__(self) -> ControlPlane:
        from corral.api import readiness
        from corral.client.leaderelection import (
            LeaderElectionConfig,
            LeaderElector,
            default_identity,
        )

        assert self.server.runner is not None, "start the server first"
        role = readiness.role_of(self.server.runner.app)
        if not self.leader_elect:
            role.standalone()
            self._start_components(self)
            return self
        config = self.election or LeaderElectionConfig(identity=default_identity())
        self.elector = LeaderElector(self._client("corral-leader-election"), config,
                                     clock=self.server.clock, on_change=role.update)
        role.update(False, "")
        self.tasks.append(_watch_task("leader-election", self.elector.run(self._lead)))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.shield(self.stop())


async def _make_agent(client: Any, node_name: str, data_dir: Path, address: str, port: int,
                      default_runtime: str = "auto", *,
                      fence: bool = False,
                      system_reserved: dict[str, str] | None = None,
                      proxy_mode: str = "userspace", pod_network: str = "host") -> Any:
    from corral.agent.agent import Agent
    from corral.agent.fencing import FenceOptions
    from corral.agent.runtimes import build_runtimes
    from corral.runtime.layout import containers_dir

    runtimes = await build_runtimes(data_dir, default_runtime, node_name=node_name)
    fencing = FenceOptions(watchdog_containers=containers_dir(data_dir / "runtime")) if fence else None
    agent = Agent(client, node_name=node_name, data_dir=data_dir, runtime=runtimes,
                  address=address, port=port,
                  system_reserved=system_reserved, fencing=fencing, proxy_mode=proxy_mode,
                  pod_network=_pod_network(client, pod_network, node_name, address, data_dir))
    return agent


def api_publishing(server: RunningServer) -> dict[str, Any]:
    """The CA, service range and address in-cluster clients are pointed at."""
    host = server.options.host
    address = "127.0.0.1" if host in ("0.0.0.0", "localhost", "") else host
    return {"root_ca": server.ca_file.read_text(), "service_cidr": server.options.service_cidr,
            "address": address, "port": server.port}


def _pod_network(client: Any, mode: str, node_name: str, address: str, data_dir: Path) -> Any:
    """net/podnet.py's PodNetwork for ``cni`` (``auto``: when this machine can), else None."""
    from corral.net.cni import find_plugin_dir
    from corral.net.podnet import PodNetwork, why_unavailable

    if mode == "host":
        return None
    plugins = find_plugin_dir()
    why_not = why_unavailable(plugins)
    if why_not is not None:
        if mode == "cni":
            raise ValueError(f"--pod-network cni: {why_not}")
        log.info("pods share the host's network: %s", why_not)
        return None
    assert plugins is not None
    return PodNetwork(client, node_name=node_name, address=address, state_dir=data_dir / "podnet",
                      plugin_dir=plugins)


def _local_node_certificate(server: RunningServer, node_name: str, agent_dir: Path) -> None:
    """What a join token would buy, signed by the CA on this machine (kept
    while it is usable for this node)."""
    from cryptography import x509

    from corral.api.certs import sign_client_csr
    from corral.client.nodecert import (
        credential_path,
        new_key_and_csr,
        stored_certificate_problem,
        write_credential,
    )

    path = credential_path(agent_dir)
    if not stored_certificate_problem(path, node_name, server.ca_file):
        return
    csr_pem, key_pem = new_key_and_csr(node_name)
    cert = sign_client_csr(server.options.data_dir / "pki", x509.load_pem_x509_csr(csr_pem))
    write_credential(path, key_pem, cert)


def _local_serving_certificate(server: RunningServer, node_name: str, agent_dir: Path) -> None:
    """The agent endpoint's certificate, from the CA on this machine (renewed
    later through CSRs like a joined agent's)."""
    from corral.agent.servingcert import serving_path
    from corral.api.kubelet_serving import issue_local

    issue_local(server.options.data_dir / "pki", node_name, ["127.0.0.1"], serving_path(agent_dir))


class LocalAgent(_Components):
    """The agent of the machine the server runs on (``corral up``)."""

    def __init__(self, server: RunningServer, node_name: str | None = None, port: int = 0,
                 default_runtime: str = "auto", system_reserved: dict[str, str] | None = None,
                 proxy_mode: str = "userspace", pod_network: str = "host") -> None:
        super().__init__()
        self.proxy_mode = proxy_mode
        self.pod_network = pod_network
        self.server = server
        self.node_name = node_name or socket.gethostname().lower()
        self.port = port
        self.default_runtime = default_runtime
        self.system_reserved = system_reserved

    async def __aenter__(self) -> LocalAgent:
        from corral.client.nodecert import node_api_client

        # The same identity a joining agent gets (system:node:NAME), so the
        # node authorizer confines this agent too: on the server's local
        # socket a node token, else a node certificate (issued here straight
        # from the CA on this machine, renewed through CSRs).
        agent_dir = self.server.options.data_dir / "agent"
        socket = self.server.component_socket()
        if socket is not None:  # same process, or one of its API workers: no TLS (agent/localidentity.py)
            from corral.agent.localidentity import local_node_client
            from corral.api.server import token_file

            client = await local_node_client(str(socket),
                                             token_file(self.server.options.data_dir), self.node_name,
                                             ca_file=str(self.server.ca_file))
            self.closers.append(client.close)
        else:
            _local_node_certificate(self.server, self.node_name, agent_dir)
            stack = contextlib.AsyncExitStack()
            self.closers.append(stack.aclose)
            client = await stack.enter_async_context(node_api_client(
                self.server.url, None, ca_file=str(self.server.ca_file), insecure=False,
                node_name=self.node_name, data_dir=agent_dir))
        _local_serving_certificate(self.server, self.node_name, agent_dir)
        agent = await _make_agent(client, self.node_name, self.server.options.data_dir / "agent",
                                  "127.0.0.1", self.port, self.default_runtime,
                                  system_reserved=self.system_reserved,
                                  proxy_mode=self.proxy_mode, pod_network=self.pod_network)
        self.tasks.append(_watch_task("agent", agent.run()))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.shield(self.stop())


async def run_agent(server_url: str, token: str | None, *, ca_file: str | None, insecure: bool,
                    node_name: str | None, data_dir: Path, address: str, port: int,
                    stop: asyncio.Event, default_runtime: str = "auto",
                    system_reserved: dict[str, str] | None = None, proxy_mode: str = "userspace",
                    pod_network: str = "auto") -> None:
    """A joining agent: a join token is exchanged for a node client
    certificate (kept in DATA_DIR/pki, reused on restart, renewed before it
    expires), which is then the agent's identity (client/nodecert.py)."""
    from corral.client.nodecert import node_api_client

    name = node_name or socket.gethostname().lower()
    async with node_api_client(server_url, token, ca_file=ca_file, insecure=insecure, node_name=name,
                               data_dir=data_dir) as client:
        # Its log/exec endpoint serves a certificate from a CSR and lets in
        # only the API servers' client certificate (agent/servingcert.py).
        agent = await _make_agent(client, name, data_dir, address, port, default_runtime,
                                  fence=True, system_reserved=system_reserved,
                                  proxy_mode=proxy_mode, pod_network=pod_network)
        task = _watch_task("agent", agent.run())
        await stop.wait()
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
