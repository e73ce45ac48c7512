"""The kernel proxy mode: the same service table as the userspace proxy,
rendered as an nftables ruleset of DNAT rules (root only).

Each service listener becomes ``ip daddr VIP tcp dport P dnat to numgen inc
mod N map {...}`` in a nat chain on the output hook (traffic from this
machine, including its pods on the host network) and on prerouting (traffic
arriving from other machines, for node ports). The whole table is replaced
in one ``nft -f`` transaction, so there is never a half-written table.
Connection tracking keeps an open connection on the backend it was given,
so an endpoint that leaves the map is drained, never cut.

Compared with the userspace mode: balancing is round-robin only
(``numgen inc``); ``sessionAffinity: ClientIP`` becomes a hash of the
client address over the ready backends (sticky while that set does not
change); a port without ready endpoints answers TCP with a reset.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import shutil
from typing import Any

from corral.client.api import ApiClient
from corral.client.informer import Informer
from corral.client.resources import ENDPOINTSLICES, SERVICES
from corral.clock import Clock, RealClock
from corral.net.servicetable import ListenKey, PortPlan, plan

log = logging.getLogger(__name__)


class NftError(RuntimeError):
    pass


def table_name(node_name: str) -> str:
    """One table per agent, so two agents on one machine (tests) never clash."""
    return "corral_" + hashlib.sha256(node_name.encode()).hexdigest()[:10]


def _rule(key: ListenKey, p: PortPlan) -> str:
    proto = key.protocol.lower()
    match = f"ip daddr {key.ip} {proto} dport {key.port}"
    if not p.backends:
        return f"{match} reject" + (" with tcp reset" if proto == "tcp" else "")
    pick = "jhash ip saddr" if p.affinity_seconds is not None else "numgen inc"
    targets = ", ".join(f"{i} : {ip} . {port}" for i, (ip, port) in enumerate(p.backends))
    return f"{match} dnat ip to {pick} mod {len(p.backends)} map {{ {targets} }}"


def render(table: str, plans: list[PortPlan]) -> str:
    """The nft script that replaces ``table`` with the rules for ``plans``."""
    rules = [_rule(key, p) for p in plans for key in p.listen]
    body = "\n".join(f"    {r}" for r in rules)
    chains = "\n".join(
        f"  chain {hook} {{\n    type nat hook {hook} priority -100; policy accept;\n{body}\n  }}"
        for hook in ("output", "prerouting"))
    # Whatever was DNATed and leaves this host's stack is masqueraded: a
    # 127.x source (needs route_localnet, see sync) cannot be answered by a
    # peer; a node port's backend on another node would answer the client
    # directly (not through us, so not un-DNATed); and a pod reaching a
    # backend on its own bridge would get the answer straight from the
    # backend's address, not the VIP's (hairpin).
    chains += ("\n  chain postrouting {\n    type nat hook postrouting priority 100; policy accept;\n"
               '    oifname != "lo" ct status dnat masquerade\n  }'
               # and with route_localnet on, refuse what it would let in from
               # outside to loopback services (CVE-2020-8558), as kube-proxy does
               "\n  chain input {\n    type filter hook input priority 0; policy accept;\n"
               '    iifname != "lo" ip daddr 127.0.0.0/8 ct state != { established, related } ct status != dnat drop\n  }')
    return f"table ip {table} {{}}\ndelete table ip {table}\ntable ip {table} {{\n{chains}\n}}\n"


async def nft(script: str) -> None:
    process = await asyncio.create_subprocess_exec(
        "nft", "-f", "-", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    _, err = await process.communicate(script.encode())
    if process.returncode != 0:
        raise NftError(f"nft failed ({process.returncode}): {err.decode().strip()}")


def allow_loopback_routing() -> None:
    """Let DNATed packets with a 127.x source leave this host (then
    masqueraded), as kube-proxy does for localhost node ports."""
    with open("/proc/sys/net/ipv4/conf/all/route_localnet", "w") as f:
        f.write("1")


def available() -> bool:
    return shutil.which("nft") is not None


class KernelProxy:
    """Same informers and table as :class:`~corral.net.proxy.ServiceProxy`,
    applied as nftables rules instead of sockets."""

    def __init__(self, client: ApiClient, *, node_name: str, node_addresses: list[str],
                 clock: Clock | None = None) -> None:
        self.table = table_name(node_name)
        self.node_addresses = list(node_addresses)
        self.clock = clock or RealClock()
        self.services = Informer(client, SERVICES, clock=self.clock)
        self.slices = Informer(client, ENDPOINTSLICES, clock=self.clock)
        self._dirty = asyncio.Event()
        self._applied = ""
        for informer in (self.services, self.slices):
            informer.add_handler(on_add=self._changed, on_update=self._changed, on_delete=self._changed)

    def _changed(self, *_: Any) -> None:
        self._dirty.set()

    async def run(self) -> None:
        tasks = [asyncio.create_task(self.services.run(), name="nft services"),
                 asyncio.create_task(self.slices.run(), name="nft slices")]
        try:
            await self.services.wait_synced()
            await self.slices.wait_synced()
            while True:
                self._dirty.clear()
                try:
                    await self.sync()
                except NftError as exc:
                    log.error("kernel proxy: %s", exc)
                    await asyncio.sleep(2.0)
                    self._dirty.set()
                await self._dirty.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await asyncio.shield(self.close())

    async def sync(self) -> None:
        plans = plan(self.services.cache.list(), self.slices.cache.list(), self.node_addresses)
        script = render(self.table, plans)
        if script != self._applied:
            if any(not ip.startswith("127.") for p in plans for ip, _ in p.backends):
                allow_loopback_routing()
            await nft(script)
            self._applied = script

    async def close(self) -> None:
        try:
            await nft(f"table ip {self.table} {{}}\ndelete table ip {self.table}\n")
        except (NftError, OSError) as exc:
            log.warning("kernel proxy: could not remove table %s: %s", self.table, exc)
