"""Test hosts: N machines on one box, as network namespaces on a bridge.

Each host is a network namespace with a veth pair whose outer end is on a
bridge in the root namespace, addressed in 198.18.0.0/15 (never anything
else: see DESIGN.md, "Networks in tests"). The bridge itself has ``.1`` so
that the test process can reach every host. A process started on a host
(``nsenter --net``) and everything it starts (the process runtime's
containers are host processes) live in that host's network.

Failures a test can inject: kill -9 a process, freeze it (SIGSTOP) and thaw
it, cut a host's link (a partition: the host's end of the wire goes down)
and heal it. :meth:`HostNet.close` removes every namespace, link and process
it made, also after a failure; ``atexit`` covers an interpreter that leaves
without closing.

Needs root and iproute2.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import contextlib
import ipaddress
import os
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NETWORK = ipaddress.ip_network("198.18.0.0/15")
FIRST_SUBNET = 200  # 198.18.200.0/24 upwards: clear of other users of the range


class HostNetError(RuntimeError):
    pass


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise HostNetError(f"ip {' '.join(args)}: {proc.stderr.strip()}")
    return proc


@dataclass
class Host:
    name: str
    netns: str
    ip: str
    veth_outer: str
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.name} ({self.ip})"


def _subnet_in_use(third: int) -> bool:
    out = _ip("-4", "-o", "addr", "show", check=False).stdout
    return f" 198.18.{third}." in out


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


class HostNet:
    """``with HostNet(3) as net:`` three hosts, net.hosts[0..2]."""

    def __init__(self, count: int, *, tag: str | None = None) -> None:
        if not 1 <= count <= 50:
            raise ValueError(f"count: between 1 and 50 hosts, got {count}")
        if os.geteuid() != 0:
            raise HostNetError("test hosts need root (network namespaces)")
        self.count = count
        self.tag = tag or f"c{os.getpid() % 100000}"
        self.bridge = f"cbr{self.tag}"[:15]
        self.hosts: list[Host] = []
        self.gateway = ""
        self._closed = False

    # -- setup ---------------------------------------------------------------

    def __enter__(self) -> HostNet:
        try:
            self._create()
        except BaseException:
            self.close()
            raise
        atexit.register(self.close)
        if threading.current_thread() is threading.main_thread() \
                and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            # A terminated test run still cleans up (atexit runs on SystemExit).
            signal.signal(signal.SIGTERM, _exit_on_sigterm)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _create(self) -> None:
        third = next((t for t in range(FIRST_SUBNET, 255) if not _subnet_in_use(t)), None)
        if third is None:
            raise HostNetError("no free /24 left in 198.18.200.0-198.18.254.0")
        subnet = ipaddress.ip_network(f"198.18.{third}.0/24")
        assert subnet.subnet_of(NETWORK)  # type: ignore[arg-type]
        self.gateway = f"198.18.{third}.1"
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        self._allow_forwarding(True)
        for i in range(self.count):
            host = Host(
                name=f"host{i}",
                netns=f"{self.tag}-h{i}",
                ip=f"198.18.{third}.{10 + i}",
                veth_outer=f"v{self.tag}{i}"[:15],
            )
            self.hosts.append(host)
            _ip("netns", "add", host.netns)
            _ip("link", "add", host.veth_outer, "type", "veth", "peer", "name", "eth0",
                "netns", host.netns)
            _ip("link", "set", host.veth_outer, "master", self.bridge)
            _ip("link", "set", host.veth_outer, "up")
            self._in(host, "addr", "add", f"{host.ip}/24", "dev", "eth0")
            self._in(host, "link", "set", "eth0", "up")
            self._in(host, "link", "set", "lo", "up")
            self._in(host, "route", "add", "default", "via", self.gateway)

    def _allow_forwarding(self, on: bool) -> None:
        """A machine with Docker has FORWARD policy DROP and bridge traffic
        passes through iptables (br_netfilter): let our bridge through."""
        if shutil.which("iptables") is None:
            return
        rule = ["FORWARD", "-i", self.bridge, "-o", self.bridge, "-j", "ACCEPT"]
        present = subprocess.run(["iptables", "-C", *rule], capture_output=True).returncode == 0
        if on and not present:
            subprocess.run(["iptables", "-I", *rule[:1], "1", *rule[1:]], capture_output=True,
                           check=True)
        elif not on and present:
            subprocess.run(["iptables", "-D", *rule], capture_output=True)

    def _in(self, host: Host, *args: str) -> None:
        _ip("-n", host.netns, *args)

    # -- processes -----------------------------------------------------------

    def spawn(self, host: Host, argv: list[str], *, log: Path | None = None,
              env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start ``argv`` on ``host`` in its own session (so a kill reaches
        only what it is meant to)."""
        out: Any = open(log, "ab") if log is not None else subprocess.DEVNULL  # noqa: SIM115
        try:
            # nsenter joins only the network namespace: `ip netns exec` also
            # gives a private mount namespace, where an agent's state tmpfs
            # (runtime/memfs.py) would be invisible to the test process, its
            # clean-up and a restarted agent, unlike on a real machine.
            proc = subprocess.Popen(
                ["nsenter", f"--net=/run/netns/{host.netns}", "--", *argv],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})}, start_new_session=True,
            )
        finally:
            if log is not None:
                out.close()
        host.procs.append(proc)
        return proc

    def pids(self, host: Host) -> list[int]:
        """Every process in the host's network namespace."""
        out = _ip("netns", "pids", host.netns, check=False).stdout
        return [int(p) for p in out.split()]

    @staticmethod
    def signal(proc: subprocess.Popen[bytes], sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, sig)

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        """kill -9, and reap it."""
        self.signal(proc, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)

    def freeze(self, proc: subprocess.Popen[bytes]) -> None:
        self.signal(proc, signal.SIGSTOP)

    def thaw(self, proc: subprocess.Popen[bytes]) -> None:
        self.signal(proc, signal.SIGCONT)

    def kill_host(self, host: Host) -> None:
        """Every process of the host dies at once, as when a machine loses power."""
        for pid in self.pids(host):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for proc in host.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)

    # -- the network ---------------------------------------------------------

    def partition(self, host: Host) -> None:
        """Cut the host's link: nothing gets in or out until :meth:`heal`."""
        _ip("link", "set", host.veth_outer, "down")

    def heal(self, host: Host) -> None:
        _ip("link", "set", host.veth_outer, "up")

    # -- teardown ------------------------------------------------------------

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for host in self.hosts:
            with contextlib.suppress(Exception):
                self.kill_host(host)
            for proc in host.procs:
                with contextlib.suppress(Exception):
                    if proc.poll() is None:
                        proc.kill()
                        proc.wait(5)
        # Processes that left the namespace's pid list but not the world
        # (e.g. stopped ones) were killed above; give the kernel a moment to
        # release the namespaces before deleting them.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(self.pids(h) for h in self.hosts):
            time.sleep(0.05)
        for host in self.hosts:
            _ip("link", "del", host.veth_outer, check=False)
            _ip("netns", "del", host.netns, check=False)
        _ip("link", "del", self.bridge, check=False)
        with contextlib.suppress(Exception):
            self._allow_forwarding(False)
        with contextlib.suppress(Exception):
            atexit.unregister(self.close)


# -- a corral cluster on the test hosts ----------------------------------------

PYTHON = os.environ.get("CORRAL_PYTHON") or __import__("sys").executable
API_PORT = 6443
AGENT_PORT = 10250


class CorralHosts:
    """The server on ``net.hosts[0]``, an agent per other host, each a real
    ``corral`` process. Logs are in ``workdir/<host>.log``."""

    def __init__(self, net: HostNet, workdir: Path, *, server_args: tuple[str, ...] = ()) -> None:
        self.net = net
        self.workdir = Path(workdir)
        self.server_args = server_args
        self.server: subprocess.Popen[bytes] | None = None
        self.agents: dict[str, subprocess.Popen[bytes]] = {}  # by node name
        self.join_token = ""

    @property
    def server_host(self) -> Host:
        return self.net.hosts[0]

    @property
    def url(self) -> str:
        return f"https://{self.server_host.ip}:{API_PORT}"

    @property
    def server_dir(self) -> Path:
        return self.workdir / "server"

    @property
    def kubeconfig(self) -> Path:
        return self.server_dir / "kubeconfig"

    @property
    def ca_file(self) -> Path:
        return self.server_dir / "pki" / "ca.crt"

    def start_server(self, timeout: float = 60.0) -> None:
        self.server = self.net.spawn(
            self.server_host,
            [PYTHON, "-m", "corral.cli.main", "server", "--host", self.server_host.ip,
             "--port", str(API_PORT), "--data-dir", str(self.server_dir), *self.server_args],
            log=self.workdir / "server.log",
        )
        self._wait(lambda: self.kubeconfig.exists() and self._healthy(), timeout, "the server")
        if not self.join_token:
            self.join_token = self._create_join_token()

    def _create_join_token(self) -> str:
        """A bootstrap token (a kube-system Secret), made through the running server."""
        import asyncio

        from corral.cli.token import create_token
        from corral.client.api import ApiClient

        async def create() -> str:
            async with ApiClient.from_kubeconfig(str(self.kubeconfig), timeout=15.0) as client:
                return await create_token(client, description="test hosts")

        # In a thread: the caller may be inside an event loop.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, create()).result()

    def stop_server(self) -> None:
        if self.server is not None and self.server.poll() is None:
            self.server.terminate()
            try:
                self.server.wait(15)
            except subprocess.TimeoutExpired:
                self.net.kill(self.server)
        self.server = None

    def _healthy(self) -> bool:
        import ssl
        import urllib.request

        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        try:
            with urllib.request.urlopen(f"{self.url}/readyz", context=ctx, timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def agent_host(self, index: int) -> Host:
        return self.net.hosts[index]

    def kill_pods(self, node: str) -> None:
        """Kill every pod process an agent's runtime started (they live in
        network namespaces of their own, so killing the host's processes
        misses them) and delete the pods' network namespaces."""
        import json

        from corral.runtime.layout import sandbox_state_dirs

        data = self.workdir / node
        pids = [pid for _, _, pid in running_containers(data)]
        states = [d / "sandbox.json" for d in sandbox_state_dirs(data / "runtime")]
        for info in [*states, *(data / "runtime" / "pods").glob("*/sandbox.json")]:
            with contextlib.suppress(OSError, ValueError, KeyError):
                pids.append(int(json.loads(info.read_text())["pid"]))
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for state in (data / "podnet" / "pods").glob("*.json"):
            with contextlib.suppress(OSError, ValueError, KeyError):
                info = json.loads(state.read_text())
                if info.get("own"):
                    _ip("netns", "del", Path(info["netns"]).name, check=False)

    def kill_node(self, index: int, name: str | None = None) -> None:
        """The machine loses power: its agent and every pod on it die at once."""
        self.net.kill_host(self.agent_host(index))
        self.kill_pods(name or f"node-{index}")

    def close(self) -> None:
        """Agents first (a live agent would restart what is killed), then
        every pod, then the agents' state tmpfs mounts (a killed agent
        leaves them, as it would on a real node; removing the work dir
        must not meet them); HostNet.close takes the rest."""
        from corral.runtime.memfs import unmount_under

        for proc in self.agents.values():
            self.net.kill(proc)
        for node in list(self.agents):
            with contextlib.suppress(Exception):
                self.kill_pods(node)
        unmount_under(self.workdir)

    def start_agent(self, index: int, name: str | None = None, extra: tuple[str, ...] = (),
                    env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """An agent on host ``index``. Its pods share the host's network
        unless ``extra`` asks for ``--pod-network cni``: then they live in
        namespaces of their own, which :meth:`kill_node` and :meth:`close`
        reach and :meth:`HostNet.kill_host` does not."""
        if "--pod-network" not in extra:
            extra = ("--pod-network", "host", *extra)
        host = self.agent_host(index)
        node = name or f"node-{index}"
        proc = self.net.spawn(
            host,
            [PYTHON, "-m", "corral.cli.main", "agent", "--server", self.url, "--token",
             self.join_token, "--ca-file", str(self.ca_file), "--name", node,
             "--address", host.ip, "--port", str(AGENT_PORT),
             "--data-dir", str(self.workdir / node), *extra],
            log=self.workdir / f"{node}.log", env=env,
        )
        self.agents[node] = proc
        return proc

    @staticmethod
    def _wait(pred: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred():
                return
            time.sleep(0.1)
        raise HostNetError(f"timed out after {timeout:.0f}s waiting for {what}")


def running_containers(data_dir: Path) -> list[tuple[str, str, int]]:
    """(pod name, pod uid, pid) of every container process alive under an
    agent's data dir, read from the process runtime's files and checked
    against /proc: what actually runs, not what the API says."""
    import json

    from corral.runtime.layout import containers_dir
    from corral.runtime.shim import proc_start_ticks

    alive = []
    for cdir in containers_dir(data_dir / "runtime").glob("*"):
        try:
            started = json.loads((cdir / "started.json").read_text())
            meta = json.loads((cdir / "meta.json").read_text())
        except (OSError, ValueError):
            continue
        pid, ticks = started.get("pid"), started.get("startTicks")
        if not isinstance(pid, int):
            continue
        now_ticks = proc_start_ticks(pid)
        if now_ticks is None or (ticks is not None and now_ticks != ticks):
            continue
        try:
            stat = Path(f"/proc/{pid}/stat").read_bytes()
        except OSError:
            continue
        if stat[stat.rindex(b")") + 2: stat.rindex(b")") + 3] in (b"Z", b"X"):
            continue
        alive.append((str(meta.get("pod_name", "")), str(meta.get("pod_uid", "")), pid))
    return alive


class OverlapMonitor(threading.Thread):
    """Samples, every ``interval`` seconds, how many containers of pods named
    ``prefix...`` run on all the given agents' data dirs together, and counts
    the samples in which more ran than ``allowed``."""

    def __init__(self, dirs: list[Path], allowed: int, prefix: str, interval: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.dirs = dirs
        self.allowed = allowed
        self.prefix = prefix
        self.interval = interval
        self.overlaps = 0
        self.most = 0
        self.samples = 0
        self._halt = threading.Event()

    def count(self) -> int:
        return sum(1 for d in self.dirs for name, _, _ in running_containers(d)
                   if name.startswith(self.prefix))

    def run(self) -> None:
        while not self._halt.is_set():
            running = self.count()
            self.samples += 1
            self.most = max(self.most, running)
            if running > self.allowed:
                self.overlaps += 1
            time.sleep(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join(5)
