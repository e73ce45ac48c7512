"""The pod network of one node: a network namespace per pod, addressed by
the standard CNI plugins from the node's pod range, and routes to the other
nodes' ranges.

Layout on a node (all names derived from the node name, so two agents on
one machine never share one):

- a Linux bridge ``crl<hash>`` holding the range's first address (the pods'
  gateway, where the agent also serves cluster DNS on port 53);
- per pod, a network namespace (``/run/netns/corral-<uid>`` for the process
  runtime, the sandbox container's for Docker) whose ``eth0`` is a veth on
  that bridge, its address from ``host-local`` over ``spec.podCIDR``
  (bridge + host-local + portmap when the pod has hostPorts: Debian's
  ``containernetworking-plugins``; a namespace made here has its ``lo`` up
  from the start, net/netns.py, a Docker sandbox's gets the loopback plugin);
- a route to every other Node's podCIDR via its InternalIP, and an nftables
  table that masquerades pod traffic leaving for anything that is not a pod
  (the hosts around do not know the pod ranges).

What each pod got (netns, CNI result, the exact config used) is written to
``state_dir/pods/<uid>.json`` before anything else relies on it, so a
restarted agent answers for pods it did not start (crash-only) and the DEL
uses the config of the ADD. Everything made here is removed again: a pod's
namespace and address when it goes, the bridge, routes, table and firewall
rules when the agent stops with no pod left.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from corral.client.api import ApiClient
from corral.client.errors import ApiError
from corral.client.events import EventRecorder
from corral.client.informer import Informer
from corral.client.resources import NODES, SERVICES
from corral.clock import Clock, RealClock
from corral.net import netns
from corral.net.cni import Attachment, CniError, CniRunner, result_ips
from corral.runtime.protocol import StartError

log = logging.getLogger(__name__)

NETNS_DIR = Path("/run/netns")
POD_NETWORK_ANNOTATION = "corral.dev/pod-network"
"""On the Node: ``cni`` (pods have their own addresses) or ``host`` (pods
share the node's, so their container ports are the node's ports)."""
CIDR_WAIT = 20.0
NETWORK_NAME = "corral"
DNS_DOMAIN = "cluster.local"


class PodNetError(RuntimeError):
    pass


@dataclass(frozen=True)
class PodNet:
    """What a runtime needs to put a pod's containers on the network."""

    ip: str
    netns: str
    gateway: str
    resolv_conf: Path


async def run_cmd(*argv: str, check: bool = True, stdin: str | None = None) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate(stdin.encode() if stdin is not None else None)
    text = out.decode(errors="replace").strip()
    if check and proc.returncode != 0:
        raise PodNetError(f"{' '.join(argv)}: {text}")
    return proc.returncode or 0, text


def names(node_name: str) -> tuple[str, str]:
    """(bridge, nft table) of a node."""
    digest = hashlib.sha256(node_name.encode()).hexdigest()
    return f"crl{digest[:10]}", f"corral_pn_{digest[:10]}"


def bridge_mac(node_name: str) -> str:
    """A locally administered unicast MAC of the node's bridge."""
    digest = hashlib.sha256(("mac:" + node_name).encode()).digest()
    return ":".join(f"{b:02x}" for b in (0x02, *digest[:5]))


def why_unavailable(plugin_dir: Path | None) -> str | None:
    """None when this process can give pods their own network, else why not."""
    if os.geteuid() != 0:
        return "not running as root"
    if plugin_dir is None:
        return "no CNI plugins (apt-get install containernetworking-plugins)"
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            return f"the {tool} command is missing"
    return None


def resolv_conf(pod: dict[str, Any], nameserver: str, host_resolv: Path = Path("/etc/resolv.conf"),
                domain: str = DNS_DOMAIN) -> str:
    """The pod's /etc/resolv.conf for its dnsPolicy (ClusterFirst by
    default; Default keeps the host's; None uses dnsConfig only), with
    spec.dnsConfig's nameservers, searches and options added."""
    spec = pod.get("spec") or {}
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    ns = str((pod.get("metadata") or {}).get("namespace") or "default")
    servers: list[str] = []
    search: list[str] = []
    options: list[str] = []
    if policy == "Default":
        with contextlib.suppress(OSError):
            for line in host_resolv.read_text().splitlines():
                word, _, rest = line.partition(" ")
                if word == "nameserver":
                    servers.append(rest.strip())
                elif word == "search":
                    search.extend(rest.split())
    elif policy != "None":
        servers.append(nameserver)
        search.extend([f"{ns}.svc.{domain}", f"svc.{domain}", domain])
        options.append("ndots:5")
    config = spec.get("dnsConfig") or {}
    servers.extend(str(s) for s in config.get("nameservers") or [])
    search.extend(str(s) for s in config.get("searches") or [])
    for opt in config.get("options") or []:
        name = str(opt.get("name") or "")
        if name:
            options.append(f"{name}:{opt['value']}" if opt.get("value") is not None else name)
    lines = [f"nameserver {s}" for s in servers[:3]]
    if search:
        lines.append("search " + " ".join(dict.fromkeys(search)))
    if options:
        lines.append("options " + " ".join(dict.fromkeys(options)))
    return "\n".join(lines) + "\n"


def host_ports(pod: dict[str, Any]) -> list[dict[str, Any]]:
    """portmap's runtimeConfig.portMappings for the pod's hostPorts."""
    out = []
    for c in (pod.get("spec") or {}).get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("hostPort"):
                out.append({"hostPort": int(p["hostPort"]), "containerPort": int(p["containerPort"]),
                            "protocol": str(p.get("protocol") or "TCP").lower()})
    return out


def wants_own_network(pod: dict[str, Any]) -> bool:
    return not (pod.get("spec") or {}).get("hostNetwork")


class PodNetwork:
    def __init__(self, client: ApiClient, *, node_name: str, address: str, state_dir: Path,
                 plugin_dir: Path, recorder: EventRecorder | None = None,
                 clock: Clock | None = None) -> None:
        self.client = client
        self.node_name = node_name
        self.address = address
        self.state_dir = Path(state_dir)
        self._pods = self.state_dir / "pods"
        self._pods.mkdir(parents=True, exist_ok=True)
        self.cni = CniRunner(plugin_dir)
        self.recorder = recorder
        self.clock = clock or RealClock()
        self.bridge, self.table = names(node_name)
        self.nodes = Informer(client, NODES, clock=self.clock)
        self.nodes.add_handler(on_add=self._changed, on_update=self._changed, on_delete=self._changed)
        self.pod_cidr: ipaddress.IPv4Network | None = None
        self.gateway = ""
        self.ready = asyncio.Event()
        """Set once the node has its range and the bridge is up."""
        self._dirty = asyncio.Event()
        self._routes: dict[str, str] = {}  # cidr -> via
        self._locks: dict[str, asyncio.Lock] = {}
        self._checked: set[str] = set()
        self._state: dict[str, dict[str, Any]] = {}
        for path in self._pods.glob("*.json"):
            with contextlib.suppress(OSError, ValueError):
                self._state[path.stem] = json.loads(path.read_text())

    # -- node side -------------------------------------------------------------

    def _changed(self, *_: Any) -> None:
        self._dirty.set()

    async def run(self) -> None:
        """Follow the Nodes: our own range, routes to the others; serve DNS
        on the gateway of the range."""
        informer = asyncio.create_task(self.nodes.run(), name="podnet nodes")
        dns: asyncio.Task[None] | None = None
        dns_on = ""
        try:
            await self.nodes.wait_synced()
            while True:
                self._dirty.clear()
                try:
                    await self.sync()
                except PodNetError as exc:
                    log.error("pod network: %s", exc)
                    await asyncio.sleep(2.0)
                    self._dirty.set()
                if self.ready.is_set() and dns_on != self.gateway:
                    if dns is not None:
                        dns.cancel()
                        await asyncio.gather(dns, return_exceptions=True)
                    dns_on = self.gateway
                    dns = asyncio.create_task(self._serve_dns(), name="podnet dns")
                await self._dirty.wait()
        finally:
            for task in (informer, dns):
                if task is not None:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)

    async def _serve_dns(self) -> None:
        """The cluster DNS where pods look for it: port 53 of their gateway
        (a resolv.conf cannot name a port). The same server the agent runs
        for host-network pods, on one more address."""
        from corral.net.dns import ClusterDns

        dns = ClusterDns(self.client, address=self.gateway, port=53, clock=self.clock)
        await dns.run()

    async def sync(self) -> None:
        nodes = self.nodes.cache.list()
        mine = next((n for n in nodes if n["metadata"]["name"] == self.node_name), None)
        cidr = _pod_cidr(mine) if mine is not None else None
        if cidr is not None and cidr != self.pod_cidr:
            if self.pod_cidr is not None and self._state:
                # Our Node was deleted and registered again with another
                # range: its pods are being evicted; move once they are gone.
                log.warning("pod network: node range is now %s; moving from %s when the %d pods "
                            "left on it are gone", cidr, self.pod_cidr, len(self._state))
            else:
                await self._setup_bridge(cidr)
        if self.pod_cidr is None:
            return
        await self._sync_routes(nodes)

    async def _setup_bridge(self, cidr: ipaddress.IPv4Network) -> None:
        gateway = str(next(cidr.hosts()))
        code, _ = await run_cmd("ip", "link", "show", self.bridge, check=False)
        if code != 0:
            # A fixed address: a bridge otherwise takes its ports' lowest one,
            # changing as pods come and go (and CNI CHECK compares it).
            await run_cmd("ip", "link", "add", self.bridge, "address", bridge_mac(self.node_name),
                          "type", "bridge")
        else:
            _, addrs = await run_cmd("ip", "-4", "-o", "addr", "show", "dev", self.bridge)
            if f" {gateway}/{cidr.prefixlen} " not in addrs:  # an earlier range's gateway goes
                await run_cmd("ip", "-4", "addr", "flush", "dev", self.bridge)
        await run_cmd("ip", "addr", "replace", f"{gateway}/{cidr.prefixlen}", "dev", self.bridge)
        await run_cmd("ip", "link", "set", self.bridge, "up")
        Path("/proc/sys/net/ipv4/ip_forward").write_text("1")
        await self._firewall(True)
        self.pod_cidr, self.gateway = cidr, gateway
        log.info("pod network: range %s on bridge %s (gateway %s)", cidr, self.bridge, gateway)
        self.ready.set()
        await self._warn_loopback_services()

    async def _warn_loopback_services(self) -> None:
        """A 127.x service range is every pod's own loopback: say so once."""
        try:
            svc = await self.client.get(SERVICES, "kubernetes", "default")
        except ApiError:
            return
        ip = str((svc.get("spec") or {}).get("clusterIP") or "")
        with contextlib.suppress(ValueError):
            if ip and ipaddress.ip_address(ip).is_loopback:
                log.error("pod network: the cluster's service range is loopback (%s), which pods in "
                          "their own network namespace cannot reach; start the server with "
                          "--service-cidr outside 127/8 (e.g. 198.18.160.0/24)", ip)

    async def _firewall(self, on: bool) -> None:
        """Where Docker set the FORWARD policy to DROP (br_netfilter makes
        bridged frames pass it too), let the pods' bridge through."""
        if shutil.which("iptables") is None:
            return
        for rule in (["-i", self.bridge, "-j", "ACCEPT"], ["-o", self.bridge, "-j", "ACCEPT"]):
            present = (await run_cmd("iptables", "-C", "FORWARD", *rule, check=False))[0] == 0
            if on and not present:
                await run_cmd("iptables", "-I", "FORWARD", "1", *rule, check=False)
            elif not on and present:
                await run_cmd("iptables", "-D", "FORWARD", *rule, check=False)

    def routes_wanted(self, nodes: list[dict[str, Any]]) -> dict[str, str]:
        """podCIDR → InternalIP of every other node reachable through a
        gateway (a node on this very host, with a loopback address, has its
        bridge here already)."""
        out = {}
        for node in nodes:
            if node["metadata"]["name"] == self.node_name:
                continue
            cidr, via = _pod_cidr(node), _internal_ip(node)
            if cidr is None or not via or via == self.address:
                continue
            if ipaddress.ip_address(via).is_loopback:
                continue
            out[str(cidr)] = via
        return out

    async def _sync_routes(self, nodes: list[dict[str, Any]]) -> None:
        wanted = self.routes_wanted(nodes)
        for cidr in [c for c in self._routes if c not in wanted]:
            await run_cmd("ip", "route", "del", cidr, check=False)
            del self._routes[cidr]
        for cidr, via in wanted.items():
            if self._routes.get(cidr) != via:
                await run_cmd("ip", "route", "replace", cidr, "via", via)
                self._routes[cidr] = via
        ranges = sorted({str(self.pod_cidr), *wanted})
        await run_cmd("nft", "-f", "-", stdin=render_table(self.table, str(self.pod_cidr),
                                                           self.bridge, ranges))

    async def wait_ready(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self.ready.wait(), timeout)
            return True
        except TimeoutError:
            return False

    async def close(self) -> None:
        """The agent stops: pods left running keep their network (the next
        agent adopts them); with none left, everything node-wide goes."""
        if self._state:
            log.info("pod network: kept for the %d pods still on it: %s", len(self._state),
                     ", ".join(sorted(self._state)))
            return
        for cidr in list(self._routes):
            await run_cmd("ip", "route", "del", cidr, check=False)
        self._routes.clear()
        await run_cmd("nft", "delete", "table", "ip", self.table, check=False)
        await run_cmd("ip", "link", "del", self.bridge, check=False)
        await self._firewall(False)

    # -- pod side --------------------------------------------------------------

    def pod_ip(self, uid: str) -> str | None:
        state = self._state.get(uid)
        return str(state["ip"]) if state else None

    async def prepare(self, pod: dict[str, Any], runtimes: Any) -> str | None:
        """The pod's address, its namespace made now if its runtime takes
        one from here (the process runtime); None: the pod uses the node's."""
        if not wants_own_network(pod):
            return None
        runtime = runtimes.runtimes[await runtimes.handler_for(pod)]
        if getattr(runtime, "pod_network", None) is not self:
            return None
        sandbox = getattr(runtime, "pod_sandbox", None)
        if sandbox is not None:  # Docker: the namespace of a sandbox container
            made = await sandbox(pod)
            return made[1].ip if made is not None else None
        if not getattr(runtime, "namespaces", False):
            return None
        return (await self.ensure_netns(pod)).ip

    def _lock(self, uid: str) -> asyncio.Lock:
        return self._locks.setdefault(uid, asyncio.Lock())

    async def ensure_netns(self, pod: dict[str, Any]) -> PodNet:
        """The pod's own namespace (made here, for runtimes without a
        sandbox of their own), on the network."""
        uid = _uid(pod)
        async with self._lock(uid):
            state = self._state.get(uid)
            if state is not None and await self._intact(uid, state):
                return self._podnet(state)
            if state is not None:  # lost (e.g. the host rebooted): a fresh one
                log.warning("pod network of %s is gone (%s); making it again", uid, state["netns"])
                await self._del(uid, state)
            path = NETNS_DIR / f"corral-{uid}"
            if path.exists() and not _mounted(path):
                netns.remove(path)  # a stale placeholder
            if not path.exists():
                try:
                    await asyncio.to_thread(netns.create, path)  # with lo up
                except OSError as exc:
                    raise self._failed(pod, str(exc)) from exc
            try:
                return await self._add(pod, uid, str(path), uid, own=True)
            except StartError:
                netns.remove(path)
                raise

    async def _intact(self, uid: str, state: dict[str, Any]) -> bool:
        """Is the recorded namespace still there and as the ADD left it?
        CHECK runs once per pod and agent (an adopted pod), not per start."""
        if not _mounted(Path(state["netns"])):
            return False
        if uid in self._checked or state.get("result") is None:
            return True
        at = Attachment(str(state["containerId"]), str(state["netns"]), "eth0")
        try:
            await self.cni.check(state["conflist"], at, state["result"], state.get("runtimeConfig"))
        except CniError as exc:
            log.warning("pod %s: %s", uid, exc)
            return False
        self._checked.add(uid)
        return True

    async def attach(self, pod: dict[str, Any], netns: str, container_id: str) -> PodNet:
        """Put an existing namespace (a sandbox container's) on the network."""
        uid = _uid(pod)
        async with self._lock(uid):
            state = self._state.get(uid)
            if state is not None and state["netns"] == netns:
                return self._podnet(state)
            if state is not None:  # a new sandbox: the old one's address goes first
                await self._del(uid, state)
            return await self._add(pod, uid, netns, container_id, own=False)

    async def _add(self, pod: dict[str, Any], uid: str, netns: str, container_id: str,
                   own: bool) -> PodNet:
        if not await self.wait_ready(CIDR_WAIT):
            raise self._failed(pod, f"node {self.node_name} has no spec.podCIDR yet (the "
                                    "controller manager's node IPAM assigns one)")
        meta = pod.get("metadata") or {}
        at = Attachment(container_id, netns, "eth0", {
            "IgnoreUnknown": "1", "K8S_POD_NAMESPACE": str(meta.get("namespace", "")),
            "K8S_POD_NAME": str(meta.get("name", "")), "K8S_POD_INFRA_CONTAINER_ID": container_id})
        ports = host_ports(pod)
        conflist = self.conflist(with_portmap=bool(ports))
        runtime_config = {"portMappings": ports} if ports else {}
        state = {"uid": uid, "netns": netns, "own": own, "containerId": container_id,
                 "conflist": conflist, "runtimeConfig": runtime_config, "result": None, "ip": ""}
        self._write(uid, state)  # before ADD: a crash in between still leads to a DEL
        try:
            if not own:  # a namespace made here has lo up already (net/netns.py)
                await self.cni.add({"name": "lo", "cniVersion": "1.0.0",
                                    "plugins": [{"type": "loopback"}]},
                                   Attachment(container_id, netns, "lo"))
            result = await self.cni.add(conflist, at, runtime_config)
        except CniError as exc:
            await self._del(uid, state)
            raise self._failed(pod, str(exc)) from exc
        ips = result_ips(result)
        if not ips:
            await self._del(uid, state)
            raise self._failed(pod, "the CNI result has no address")
        state.update(result=result, ip=ips[0])
        self._write(uid, state)
        self._checked.add(uid)
        resolv = self._pods / f"{uid}.resolv.conf"
        resolv.write_text(resolv_conf(pod, self.gateway))
        return self._podnet(state)

    async def release(self, uid: str) -> None:
        """CNI DEL and the namespace (if made here); idempotent."""
        async with self._lock(uid):
            state = self._state.get(uid)
            if state is not None:
                await self._del(uid, state)
                self._dirty.set()  # a range change may have waited for this pod
        self._locks.pop(uid, None)

    def pod_env(self, pod: dict[str, Any]) -> dict[str, str]:
        """CORRAL_DNS_SERVER as a pod in its own namespace reaches it (the
        node's 127.x listener is not in its view)."""
        uid = str((pod.get("metadata") or {}).get("uid") or "")
        if uid not in self._state or not self.gateway:
            return {}
        if (pod.get("spec") or {}).get("dnsPolicy") == "Default":
            return {}
        return {"CORRAL_DNS_SERVER": f"{self.gateway}:53"}

    def pods(self) -> list[str]:
        """Uids of the pods that have a network here (for housekeeping)."""
        return list(self._state)

    async def _del(self, uid: str, state: dict[str, Any]) -> None:
        at = Attachment(str(state["containerId"]), str(state["netns"]), "eth0")
        await self.cni.delete(state["conflist"], at, state.get("result"), state.get("runtimeConfig"))
        if state.get("own"):
            netns.remove(Path(state["netns"]))
        self._state.pop(uid, None)
        self._checked.discard(uid)
        for suffix in (".json", ".resolv.conf"):
            (self._pods / f"{uid}{suffix}").unlink(missing_ok=True)

    def conflist(self, *, with_portmap: bool) -> dict[str, Any]:
        assert self.pod_cidr is not None
        plugins: list[dict[str, Any]] = [{
            "type": "bridge", "bridge": self.bridge, "isGateway": True, "hairpinMode": True,
            "ipam": {"type": "host-local", "dataDir": str(self.state_dir / "ipam"),
                     "ranges": [[{"subnet": str(self.pod_cidr), "gateway": self.gateway}]],
                     "routes": [{"dst": "0.0.0.0/0"}]},
        }]
        if with_portmap:
            plugins.append({"type": "portmap", "capabilities": {"portMappings": True},
                            "snat": True})
        return {"cniVersion": "1.0.0", "name": NETWORK_NAME, "plugins": plugins}

    def _podnet(self, state: dict[str, Any]) -> PodNet:
        return PodNet(ip=str(state["ip"]), netns=str(state["netns"]), gateway=self.gateway,
                      resolv_conf=self._pods / f"{state['uid']}.resolv.conf")

    def _write(self, uid: str, state: dict[str, Any]) -> None:
        tmp = self._pods / f"{uid}.json.tmp"
        tmp.write_text(json.dumps(state))
        tmp.replace(self._pods / f"{uid}.json")
        self._state[uid] = state

    def _failed(self, pod: dict[str, Any], message: str) -> StartError:
        text = f"failed to set up the pod network: {message}"
        if self.recorder is not None:
            obj = {"apiVersion": "v1", "kind": "Pod", "metadata": pod.get("metadata") or {}}
            self.recorder.record(obj, "Warning", "FailedCreatePodSandBox", text)
        return StartError("ContainerCreating", text)


def render_table(table: str, pod_cidr: str, bridge: str, ranges: list[str]) -> str:
    """Masquerade what a pod sends to anything but a pod: the machines
    around do not route the pod ranges back."""
    podnets = ", ".join(ranges)
    return (f"table ip {table} {{}}\ndelete table ip {table}\ntable ip {table} {{\n"
            f"  chain postrouting {{\n    type nat hook postrouting priority 100; policy accept;\n"
            f'    ip saddr {pod_cidr} ip daddr != {{ {podnets} }} oifname != "{bridge}" masquerade\n'
            f"  }}\n}}\n")


def _mounted(path: Path) -> bool:
    """A namespace file is a mount of nsfs; an unmounted one is an empty
    placeholder (e.g. seen from another mount namespace)."""
    target = str(path)
    try:
        with open("/proc/self/mountinfo") as f:
            return any(line.split()[4] == target for line in f)
    except OSError:
        return False


def _uid(pod: dict[str, Any]) -> str:
    uid = str((pod.get("metadata") or {}).get("uid") or "")
    if not uid or "/" in uid:
        raise StartError("ContainerCreating", "the pod has no usable metadata.uid")
    return uid


def _pod_cidr(node: dict[str, Any]) -> ipaddress.IPv4Network | None:
    spec = node.get("spec") or {}
    text = (spec.get("podCIDRs") or [spec.get("podCIDR")])[0]
    if not text:
        return None
    try:
        net = ipaddress.ip_network(str(text), strict=False)
    except ValueError:
        return None
    return net if isinstance(net, ipaddress.IPv4Network) else None


def _internal_ip(node: dict[str, Any]) -> str:
    for a in (node.get("status") or {}).get("addresses") or []:
        if a.get("type") == "InternalIP":
            return str(a.get("address") or "")
    return ""


def remove_node_network(node_name: str, state_dir: Path) -> list[str]:
    """Remove what a node's pod network left on this machine (namespaces of
    its pods, bridge, masquerade table, firewall rules), e.g. after an agent
    that will not come back; returns what it removed. Synchronous, for
    tests and tools; pods still running there lose their network."""
    import subprocess

    def run(*argv: str) -> bool:
        return subprocess.run(argv, capture_output=True, timeout=30).returncode == 0

    removed = []
    for path in sorted((Path(state_dir) / "pods").glob("*.json")):
        with contextlib.suppress(OSError, ValueError, KeyError):
            info = json.loads(path.read_text())
            if info.get("own") and run("ip", "netns", "del", Path(info["netns"]).name):
                removed.append(f"netns {Path(info['netns']).name}")
    bridge, table = names(node_name)
    if run("ip", "link", "del", bridge):
        removed.append(f"bridge {bridge}")
    if run("nft", "delete", "table", "ip", table):
        removed.append(f"nft table {table}")
    for rule in (["-i", bridge, "-j", "ACCEPT"], ["-o", bridge, "-j", "ACCEPT"]):
        while shutil.which("iptables") and run("iptables", "-D", "FORWARD", *rule):
            removed.append(f"iptables FORWARD {' '.join(rule)}")
    return removed
