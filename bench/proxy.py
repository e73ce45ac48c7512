"""Requests per second and p99 latency through the userspace service proxy
versus straight to the backend, in the same run.

Three processes: a minimal HTTP backend, the proxy's data path (a
:class:`~corral.net.proxy.TcpListener` on a 127.x virtual IP with the
production :class:`~corral.net.balancer.Balancer`) and this one, the load
generator, which runs the same closed-loop clients against the backend and
then against the VIP. ``--connection new`` opens a connection per request
(the proxy's accept+connect path), ``keepalive`` reuses one per client
(its copy path); by default both run.

    .venv/bin/python bench/proxy.py                 # ~20 s per mode
    .venv/bin/python bench/proxy.py --seconds 10 --clients 32
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, free_port, percentile  # noqa: E402

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"


class _Http(asyncio.Protocol):
    """Answers every request it sees in full with a tiny 200."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            _, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            self.transport.write(RESPONSE)  # type: ignore[attr-defined]


async def serve_backend(port: int) -> None:
    loop = asyncio.get_running_loop()
    await loop.create_server(_Http, "127.0.0.1", port, backlog=1024)
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


async def _request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    await reader.readuntil(b"\r\n\r\n")
    await reader.readexactly(2)


async def load(ip: str, port: int, clients: int, seconds: float, keepalive: bool) -> tuple[float, list[float]]:
    latencies: list[float] = []
    stop = time.perf_counter() + seconds

    async def client() -> None:
        conn = await asyncio.open_connection(ip, port) if keepalive else None
        while time.perf_counter() < stop:
            start = time.perf_counter()
            if conn is None:
                reader, writer = await asyncio.open_connection(ip, port)
                await _request(reader, writer)
                writer.close()
            else:
                await _request(*conn)
            latencies.append((time.perf_counter() - start) * 1000)
        if conn is not None:
            conn[1].close()

    began = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return len(latencies) / (time.perf_counter() - began), latencies


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


async def main(args: argparse.Namespace) -> None:
    backend_port, proxy_port = free_port(), free_port()
    vip = f"127.43.{random.randint(200, 254)}.{random.randint(2, 254)}"
    me = [sys.executable, __file__]
    kernel_vip = f"127.43.{random.randint(200, 254)}.{random.randint(2, 254)}"
    children = [
        subprocess.Popen([*me, "--serve-backend", str(backend_port)]),
        subprocess.Popen([*me, "--serve-proxy", vip, str(proxy_port), str(backend_port),
                          *(["--uvloop"] if args.uvloop else [])]),
    ]
    table = None
    try:
        await wait_listening("127.0.0.1", backend_port)
        await wait_listening(vip, proxy_port)
        targets = {"userspace": (vip, proxy_port)}
        if "nftables" in args.mode:
            table = await kernel_table(kernel_vip, 80, backend_port)
            targets["nftables"] = (kernel_vip, 80)
        for connection, mode in [(c, m) for c in args.connection for m in args.mode]:
            keepalive = connection == "keepalive"
            await load("127.0.0.1", backend_port, args.clients, 1.0, keepalive)  # warm-up
            # Alternate direct and proxied rounds so drift in the machine's
            # load hits both alike; compare the medians.
            rates: dict[str, list[float]] = {"direct": [], "proxied": []}
            direct: list[float] = []
            proxied: list[float] = []
            for _ in range(args.rounds):
                rps, lat = await load("127.0.0.1", backend_port, args.clients, args.seconds, keepalive)
                rates["direct"].append(rps)
                direct += lat
                rps, lat = await load(*targets[mode], args.clients, args.seconds, keepalive)
                rates["proxied"].append(rps)
                proxied += lat
            direct_rps, proxied_rps = (statistics.median(rates[k]) for k in ("direct", "proxied"))
            params = {"mode": mode, "connection": connection, "clients": args.clients,
                      "loop": "uvloop" if args.uvloop and mode == "userspace" else "asyncio",
                      "seconds": args.seconds, "rounds": args.rounds}
            emit("proxy", "rps", proxied_rps, "1/s", direct=round(direct_rps, 1), **params)
            emit("proxy", "p99_ms", percentile(proxied, 99), "ms",
                 direct=round(percentile(direct, 99), 3), **params)
            emit("proxy", "ratio_to_direct", proxied_rps / direct_rps, "ratio",
                 target=0.9 if mode == "nftables" else 0.5, **params)
    finally:
        if table is not None:
            from corral.net.nft import nft

            await nft(f"delete table ip {table}\n")
        for child in children:
            child.send_signal(signal.SIGTERM)
        for child in children:
            child.wait(5)


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=2.0, help="per round and side (default 2)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating direct/proxied rounds (default 3)")
    parser.add_argument("--clients", type=int, default=16, help="closed-loop clients (default 16)")
    parser.add_argument("--connection", nargs="+", choices=("new", "keepalive"), default=["new", "keepalive"])
    parser.add_argument("--mode", nargs="+", choices=("userspace", "nftables"),
                        default=["userspace", "nftables"] if os.geteuid() == 0 else ["userspace"],
                        help="proxy modes to measure (nftables needs root; default: all that can run)")
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
        asyncio.run(main(args))


if __name__ == "__main__":
    cli()
