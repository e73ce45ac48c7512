"""Requests per second and p99 latency through each service proxy mode
versus straight to the backend, in the same run.

Three parties: a minimal HTTP backend (its own process), the proxy (the
userspace mode's data path, a :class:`~corral.net.proxy.TcpListener` on a
127.x virtual IP with the production :class:`~corral.net.balancer.Balancer`,
in its own process as in the agent; or the kernel mode's nftables DNAT
table) and a load generator: ``wrk`` when installed (C, epoll, little CPU
per request), else closed-loop asyncio clients in this process, which cost
more CPU than the proxy and so measure mostly themselves.

As root it runs in a network namespace of its own (``unshare --net``),
which keeps no sockets in TIME_WAIT: the host's TIME_WAIT sockets, its
conntrack table and its firewall rules, which other work on a shared
machine fills, otherwise make every new connection slower by an amount that
changes from run to run and with the order of the rounds (connect()
searching a crowded ephemeral port range was a sixth of the proxy's time,
py-spy), and the kernel mode's rules stay private to the run. The CPUs remain
shared, so the run records the load average.

Direct and proxied rounds alternate (ABBA order, so drift in the machine's
load hits both alike); each proxied round is divided by the direct round
next to it and ``ratio_to_direct`` is the median of those ratios. Besides
rates, every round records the CPU time the backend, the proxy and the
load generator spent per request, which noise from other processes moves
far less than rates (``cpu_us_per_request``).

    .venv/bin/python bench/proxy.py                 # ~70 s as root (both modes)
    .venv/bin/python bench/proxy.py --seconds 3 --rounds 8 --connection keepalive
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cpu_seconds, emit, free_port, percentile  # noqa: E402

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"
CLOSING = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nok"


class _Http(asyncio.Protocol):
    """Answers every request it sees with a tiny 200; closes after one that
    asked for ``Connection: close`` (how wrk opens a connection per request)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            if b"connection: close" in head.lower():
                self.transport.write(CLOSING)  # type: ignore[attr-defined]
                self.transport.close()
                return
            self.transport.write(RESPONSE)  # type: ignore[attr-defined]


async def serve_backend(port: int) -> None:
    loop = asyncio.get_running_loop()
    await loop.create_server(_Http, "127.0.0.1", port, backlog=4096)
    await asyncio.Event().wait()


async def serve_proxy(vip: str, port: int, backend: int) -> None:
    from corral.net.balancer import Balancer
    from corral.net.proxy import TcpListener
    from corral.net.servicetable import ListenKey

    balancer = Balancer("round-robin", now=time.monotonic)
    balancer.set_backends([("127.0.0.1", backend)])
    await TcpListener(ListenKey("TCP", vip, port), balancer).start()
    await asyncio.Event().wait()


async def kernel_table(vip: str, port: int, backend: int) -> str:
    """The kernel mode's DNAT table for one VIP (root and nft needed)."""
    from corral.net.nft import nft, render, table_name
    from corral.net.servicetable import ListenKey, PortPlan

    table = table_name(f"bench-{os.getpid()}")
    await nft(render(table, [PortPlan("bench/web", "", "TCP", [ListenKey("TCP", vip, port)],
                                      [("127.0.0.1", backend)])]))
    return table


async def drop_table(table: str) -> None:
    from corral.net.nft import nft

    await nft(f"delete table ip {table}\n")


@dataclass
class Round:
    rps: float
    p99_ms: float
    requests: int
    errors: int
    client_cpu_s: float


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def parse_wrk(out: str) -> tuple[float, float, int, int]:
    """(requests/s, p99 ms, requests, errors) from ``wrk --latency`` output."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    value, unit = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, float(value) * _UNITS[unit], requests, errors + (int(bad.group(1)) if bad else 0)


async def wrk_round(ip: str, port: int, clients: int, seconds: float, keepalive: bool) -> Round:
    # One wrk thread is plenty for a Python server; wrk takes whole seconds.
    cmd = ["wrk", "-t1", f"-c{clients}", f"-d{max(1, round(seconds))}s", "--latency", f"http://{ip}:{port}/"]
    if not keepalive:
        cmd[1:1] = ["-H", "Connection: close"]
    before = _children_cpu()
    process = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.STDOUT)
    out, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"wrk failed ({process.returncode}): {out.decode()}")
    rps, p99, requests, errors = parse_wrk(out.decode())
    return Round(rps, p99, requests, errors, _children_cpu() - before)


async def _request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    await reader.readuntil(b"\r\n\r\n")
    await reader.readexactly(2)


async def python_round(ip: str, port: int, clients: int, seconds: float, keepalive: bool) -> Round:
    """Closed-loop asyncio clients in this process (when wrk is missing)."""
    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds

    async def client() -> None:
        nonlocal errors
        conn = await asyncio.open_connection(ip, port) if keepalive else None
        while time.perf_counter() < stop:
            start = time.perf_counter()
            try:
                if conn is None:
                    reader, writer = await asyncio.open_connection(ip, port)
                    await _request(reader, writer)
                    writer.close()
                else:
                    await _request(*conn)
            except (OSError, asyncio.IncompleteReadError):
                errors += 1
                continue
            latencies.append((time.perf_counter() - start) * 1000)
        if conn is not None:
            conn[1].close()

    cpu = time.process_time()
    began = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    elapsed = time.perf_counter() - began
    return Round(len(latencies) / elapsed, percentile(latencies, 99), len(latencies), errors,
                 time.process_time() - cpu)


async def wait_listening(ip: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            _, writer = await asyncio.open_connection(ip, port)
            writer.close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


class Measured:
    """Rounds of one side (direct or proxied) with the CPU each process
    spent on them."""

    def __init__(self) -> None:
        self.rounds: list[Round] = []
        self.cpu_s: dict[str, float] = {}

    def add(self, r: Round, cpu: dict[str, float]) -> None:
        self.rounds.append(r)
        for name, seconds in cpu.items():
            self.cpu_s[name] = self.cpu_s.get(name, 0.0) + seconds

    def cpu_us_per_request(self) -> dict[str, float]:
        requests = sum(r.requests for r in self.rounds) or 1
        return {name: round(s * 1e6 / requests, 1) for name, s in self.cpu_s.items()}


async def measure(run, target: tuple[str, int], args: argparse.Namespace, keepalive: bool,
                  pids: dict[str, int], into: Measured) -> Round:
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    r = await run(*target, args.clients, args.seconds, keepalive)
    into.add(r, {"client": r.client_cpu_s, **{n: cpu_seconds(p) - before[n] for n, p in pids.items()}})
    return r


async def compare(run, direct: tuple[str, int], proxied: tuple[str, int], args: argparse.Namespace,
                  keepalive: bool, pids: dict[str, int]) -> tuple[Measured, Measured, list[float]]:
    d, p = Measured(), Measured()
    proxy_pid = {"proxy": pids["proxy"]} if "proxy" in pids else {}
    backend_pid = {"backend": pids["backend"]}
    ratios = []
    for i in range(args.rounds):
        order = [False, True] if i % 2 == 0 else [True, False]
        got = {}
        for through in order:
            if through:
                got[through] = await measure(run, proxied, args, keepalive, backend_pid | proxy_pid, p)
            else:
                got[through] = await measure(run, direct, args, keepalive, backend_pid, d)
        ratios.append(got[True].rps / got[False].rps)
    return d, p, ratios


async def main(args: argparse.Namespace) -> None:
    run = wrk_round if args.generator == "wrk" else python_round
    backend_port, proxy_port = free_port(), free_port()
    vip = f"127.43.{random.randint(200, 254)}.{random.randint(2, 254)}"
    kernel_vip = f"127.43.{random.randint(200, 254)}.{random.randint(2, 254)}"
    me = [sys.executable, __file__]
    backend = subprocess.Popen([*me, "--serve-backend", str(backend_port)])
    proxy = subprocess.Popen([*me, "--serve-proxy", vip, str(proxy_port), str(backend_port),
                              *(["--uvloop"] if args.uvloop else [])])
    table = None
    load_before = os.getloadavg()[0]
    try:
        await wait_listening("127.0.0.1", backend_port)
        await wait_listening(vip, proxy_port)
        targets = {"userspace": (vip, proxy_port), "nftables": (kernel_vip, 80)}
        direct = ("127.0.0.1", backend_port)
        for connection, mode in [(c, m) for c in args.connection for m in args.mode]:
            keepalive = connection == "keepalive"
            # Loaded only while measuring the kernel mode: its nat hooks put
            # every connection of the namespace, direct ones too, through conntrack.
            if mode == "nftables" and table is None:
                table = await kernel_table(kernel_vip, 80, backend_port)
            elif mode != "nftables" and table is not None:
                await drop_table(table)
                table = None
            for target in (direct, targets[mode]):  # warm-up
                await run(*target, args.clients, 1, keepalive)
            pids = {"backend": backend.pid, **({"proxy": proxy.pid} if mode == "userspace" else {})}
            d, p, ratios = await compare(run, direct, targets[mode], args, keepalive, pids)
            params = {"mode": mode, "connection": connection, "clients": args.clients,
                      "generator": args.generator, "seconds": args.seconds, "rounds": args.rounds,
                      "netns": args.netns,
                      "loop": "uvloop" if args.uvloop and mode == "userspace" else "asyncio",
                      "loadavg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)]}
            errors = sum(r.errors for r in d.rounds + p.rounds)
            emit("proxy", "rps", statistics.median(r.rps for r in p.rounds), "1/s",
                 direct=round(statistics.median(r.rps for r in d.rounds), 1), errors=errors, **params)
            emit("proxy", "p99_ms", statistics.median(r.p99_ms for r in p.rounds), "ms",
                 direct=round(statistics.median(r.p99_ms for r in d.rounds), 3), **params)
            emit("proxy", "ratio_to_direct", statistics.median(ratios), "ratio",
                 target=0.9 if mode == "nftables" else 0.5, round_ratios=[round(x, 3) for x in ratios],
                 **params)
            cost = {"proxied": p.cpu_us_per_request(), "direct": d.cpu_us_per_request()}
            emit("proxy", "cpu_us_per_request", sum(cost["proxied"].values()), "us", **cost, **params)
            # What the rates would compare as if CPU time were the only limit
            # (both cores busy with client, backend and proxy): far steadier
            # than rates on a machine others load.
            emit("proxy", "cpu_ratio_to_direct", sum(cost["direct"].values()) / sum(cost["proxied"].values()),
                 "ratio", **params)
    finally:
        if table is not None:
            await drop_table(table)
        for child in (backend, proxy):
            child.send_signal(signal.SIGTERM)
        for child in (backend, proxy):
            child.wait(5)


NETNS_ENV = "CORRAL_BENCH_PROXY_NETNS"


def enter_netns() -> None:
    """Re-run this benchmark in a fresh network namespace (root only)."""
    os.environ[NETNS_ENV] = "1"
    os.execvp("unshare", ["unshare", "--net", "--", sys.executable, __file__, *sys.argv[1:]])


def setup_netns() -> None:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    # With a connection per request, sockets in TIME_WAIT (60 s) pile up in
    # the few address pairs involved (direct and proxy-to-backend share one),
    # and connect() slows down searching past them: the side measured later
    # in a run paid more. This namespace holds only the benchmark, on
    # loopback, so it keeps none.
    Path("/proc/sys/net/ipv4/tcp_max_tw_buckets").write_text("0")


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=2.0, help="per round and side (default 2)")
    parser.add_argument("--rounds", type=int, default=4,
                        help="direct/proxied pairs, alternately ordered (default 4)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent connections (default 32)")
    parser.add_argument("--connection", nargs="+", choices=("new", "keepalive"), default=["new", "keepalive"])
    parser.add_argument("--mode", nargs="+", choices=("userspace", "nftables"),
                        default=["userspace", "nftables"] if os.geteuid() == 0 else ["userspace"],
                        help="proxy modes to measure (nftables needs root; default: all that can run)")
    parser.add_argument("--generator", choices=("wrk", "python"),
                        default="wrk" if shutil.which("wrk") else "python",
                        help="load generator (default wrk when installed: scripts/install-deps)")
    parser.add_argument("--host-netns", action="store_true",
                        help="stay in the host's network namespace (default as root: a fresh one)")
    parser.add_argument("--uvloop", action="store_true",
                        help="run the userspace proxy process on uvloop (what-if: the agent uses asyncio)")
    parser.add_argument("--serve-backend", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--serve-proxy", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    if args.serve_backend:
        asyncio.run(serve_backend(args.serve_backend))
    elif args.serve_proxy:
        vip, port, backend = args.serve_proxy
        if args.uvloop:
            import uvloop

            uvloop.install()
        asyncio.run(serve_proxy(vip, int(port), int(backend)))
    else:
        if os.geteuid() == 0 and not args.host_netns and shutil.which("unshare"):
            if not os.environ.get(NETNS_ENV):
                enter_netns()
            setup_netns()
        args.netns = bool(os.environ.get(NETNS_ENV))
        signal.signal(signal.SIGTERM, signal.default_int_handler)  # so finally cleans up
        asyncio.run(main(args))


if __name__ == "__main__":
    cli()
