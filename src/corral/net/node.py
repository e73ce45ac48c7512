"""A node's side of service networking: the service proxy and the cluster
DNS server the agent runs, and the variables that tell its pods about them."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from corral.client.api import ApiClient
from corral.clock import Clock
from corral.net import nft
from corral.net.dns import ClusterDns
from corral.net.nft import KernelProxy
from corral.net.proxy import ServiceProxy
from corral.net.svcenv import dns_env, services_env

log = logging.getLogger(__name__)

PROXY_MODES = ("userspace", "nftables")


def default_proxy_mode(*, one_machine: bool) -> str:
    """The proxy mode when none is asked for.

    A joining agent running as root with ``nft`` gets the kernel mode, as
    kube-proxy would. ``corral up`` keeps the userspace mode even as root:
    its listeners die with the process, whereas a killed kernel-mode agent
    leaves DNAT rules on the host that keep capturing the VIPs until the
    next start; and several one-machine clusters (tests, a developer's
    second cluster) can share a host with plain sockets on their own
    ranges. The kernel mode does work there too (DNAT from a 127.x VIP to a
    127.0.0.1 backend needs no sysctl), so ``--proxy-mode nftables`` is
    there to choose it."""
    if one_machine or os.geteuid() != 0 or not nft.available():
        return "userspace"
    return "nftables"


def proxy_mode_problem(mode: str) -> str | None:
    """Why ``mode`` cannot run on this machine, or None."""
    if mode not in PROXY_MODES:
        return f"{mode!r} is not one of {', '.join(PROXY_MODES)}"
    if mode == "nftables" and os.geteuid() != 0:
        return "nftables needs root (use userspace)"
    if mode == "nftables" and not nft.available():
        return "nftables needs the nft command (apt-get install nftables)"
    return None


class NodeNetwork:
    def __init__(self, client: ApiClient, *, address: str, dns_port: int = 0,
                 algorithm: str = "round-robin", domain: str = "cluster.local",
                 proxy_mode: str = "userspace", node_name: str = "", clock: Clock | None = None) -> None:
        self.proxy: ServiceProxy | KernelProxy
        if proxy_mode == "nftables":
            self.proxy = KernelProxy(client, node_name=node_name, node_addresses=[address], clock=clock)
        elif proxy_mode == "userspace":
            self.proxy = ServiceProxy(client, node_addresses=[address], algorithm=algorithm, clock=clock)
        else:
            raise ValueError(f"proxy_mode: {proxy_mode!r} is not one of userspace, nftables")
        self.dns = ClusterDns(client, address=address, port=dns_port, domain=domain, clock=clock)
        self.domain = domain

    @property
    def dns_server(self) -> str | None:
        return f"{self.dns.address}:{self.dns.port}" if self.dns.bound.is_set() else None

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self.proxy.run(), name="service proxy")
            group.create_task(self.dns.run(), name="cluster dns")

    async def wait_ready(self, timeout: float) -> bool:
        """True once DNS answers and the proxy has its first table; pods
        started before that would miss their service variables."""
        try:
            await asyncio.wait_for(self.dns.bound.wait(), timeout)
            await self.proxy.services.wait_synced(timeout)
            return True
        except TimeoutError:
            log.warning("service proxy/DNS not ready after %.0fs; starting pods anyway", timeout)
            return False

    def pod_env(self, pod: dict[str, Any]) -> dict[str, str]:
        cache = self.proxy.services.cache
        ns = str((pod.get("metadata") or {}).get("namespace", "default"))
        services = [s for s in cache.list() if (s.get("metadata") or {}).get("namespace") == ns]
        env = services_env(pod, services, cache.get("default/kubernetes"))
        env.update(dns_env(pod, self.dns_server, self.domain))
        return env
