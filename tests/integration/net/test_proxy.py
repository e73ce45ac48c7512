"""The userspace proxy against a real API server and real sockets: a
Service's cluster IP and node port forward to ready endpoints, spread over
them, stop sending new connections to an unready one while its open
connection keeps working, and UDP flows are forwarded too."""

from __future__ import annotations

import asyncio
import random
import socket
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from corral.client.resources import ENDPOINTSLICES, SERVICES
from corral.net.proxy import ServiceProxy
from corral.testing import running_server

NS = "default"


def free_port(ip: str = "127.0.0.1", kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((ip, 0))
        return int(s.getsockname()[1])


def random_vip() -> str:
    return f"127.43.{random.randint(200, 254)}.{random.randint(2, 254)}"


async def eventually(check: Callable[[], Awaitable[Any]], what: str, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = await check()
            if last:
                return last
        except (OSError, AssertionError, asyncio.IncompleteReadError) as exc:
            last = exc
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


async def start_backend(name: str) -> tuple[asyncio.Server, int]:
    """Answers every line with its name; keeps the connection open."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reader.readline():
                writer.write(name.encode() + b"\n")
                await writer.drain()
        finally:
            writer.close()
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def ask(ip: str, port: int) -> str:
    reader, writer = await asyncio.wait_for(asyncio.open_connection(ip, port), 2)
    try:
        writer.write(b"hi\n")
        return (await asyncio.wait_for(reader.readline(), 2)).decode().strip()
    finally:
        writer.close()


def slice_for(svc: str, ports: list[int], ready: list[bool], protocol: str = "TCP") -> dict[str, Any]:
    """Backends that listen on different ports: one slice per port, as the
    endpoints controller writes them."""
    return [{"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
             "metadata": {"name": f"{svc}-{i}", "namespace": NS,
                          "labels": {"kubernetes.io/service-name": svc}},
             "addressType": "IPv4",
             "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": r}}],
             "ports": [{"name": "web", "port": p, "protocol": protocol}]}
            for i, (p, r) in enumerate(zip(ports, ready, strict=True))]


async def test_cluster_ip_and_node_port_spread_and_drain(tmp_path: Path) -> None:
    servers = [await start_backend(f"b{i}") for i in range(3)]
    ports = [p for _, p in servers]
    vip, node_port = random_vip(), free_port()
    while not 30000 <= node_port <= 32767:
        node_port = random.randint(30000, 32767)
    async with running_server(tmp_path) as server, server.client() as client:
        await client.create(SERVICES, {
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": NS},
            "spec": {"type": "NodePort", "clusterIP": vip,
                     "ports": [{"name": "web", "port": 80, "nodePort": node_port}]}})
        for body in slice_for("web", ports, [True, True, True]):
            await client.create(ENDPOINTSLICES, body)
        proxy = ServiceProxy(client, node_addresses=["127.0.0.1"])
        task = asyncio.create_task(proxy.run())
        try:
            await eventually(lambda: ask(vip, 80), "the VIP answers")
            counts = Counter([await ask(vip, 80) for _ in range(30)])
            assert counts == {"b0": 10, "b1": 10, "b2": 10}, counts
            assert await ask("127.0.0.1", node_port) in {"b0", "b1", "b2"}

            # an open connection to b0, then b0 turns unready
            reader, writer = await asyncio.open_connection(vip, 80)
            answer = ""
            while answer != "b0":
                writer.close()
                reader, writer = await asyncio.open_connection(vip, 80)
                writer.write(b"hi\n")
                answer = (await reader.readline()).decode().strip()
            unready = await client.get(ENDPOINTSLICES, "web-0", NS)
            unready["endpoints"][0]["conditions"]["ready"] = False
            await client.replace(ENDPOINTSLICES, unready)

            async def b0_gone() -> bool:
                return "b0" not in Counter([await ask(vip, 80) for _ in range(6)])
            await eventually(b0_gone, "no new connections to the unready backend")
            assert Counter([await ask(vip, 80) for _ in range(20)]).keys() == {"b1", "b2"}
            writer.write(b"still there?\n")  # drained, not cut
            assert (await asyncio.wait_for(reader.readline(), 2)) == b"b0\n"
            writer.close()

            # a deleted backend disappears; the service keeps answering
            await client.delete(ENDPOINTSLICES, "web-1", NS)

            async def only_b2() -> bool:
                return set(Counter([await ask(vip, 80) for _ in range(6)])) == {"b2"}
            await eventually(only_b2, "deleted backend removed")

            # the Service goes away: so does its listener
            await client.delete(SERVICES, "web", NS)

            async def closed() -> bool:
                try:
                    await ask(vip, 80)
                except (TimeoutError, OSError):
                    return True
                return False
            await eventually(closed, "listener closed with the service")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            for srv, _ in servers:
                srv.close()


class _Echo(asyncio.DatagramProtocol):
    def __init__(self, name: bytes) -> None:
        self.name = name

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transport.sendto(self.name + b":" + data, addr)  # type: ignore[attr-defined]


async def test_udp_and_client_ip_affinity(tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    echoes = []
    ports = []
    for i in range(2):
        transport, _ = await loop.create_datagram_endpoint(lambda i=i: _Echo(f"u{i}".encode()),
                                                           local_addr=("127.0.0.1", 0))
        echoes.append(transport)
        ports.append(transport.get_extra_info("sockname")[1])
    vip = random_vip()
    async with running_server(tmp_path) as server, server.client() as client:
        await client.create(SERVICES, {
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "dns", "namespace": NS},
            "spec": {"clusterIP": vip, "sessionAffinity": "ClientIP",
                     "ports": [{"name": "web", "port": 53, "protocol": "UDP"}]}})
        for body in slice_for("dns", ports, [True, True], protocol="UDP"):
            await client.create(ENDPOINTSLICES, body)
        proxy = ServiceProxy(client, node_addresses=[])
        task = asyncio.create_task(proxy.run())
        try:
            async def udp_ask() -> str:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                    s.setblocking(False)
                    await loop.sock_connect(s, (vip, 53))
                    await loop.sock_sendall(s, b"ping")
                    return (await asyncio.wait_for(loop.sock_recv(s, 100), 1)).decode()
            first = await eventually(udp_ask, "UDP through the VIP")
            assert first.endswith(":ping")
            # ClientIP affinity: every flow from 127.0.0.1 lands on one backend
            assert {(await udp_ask()).split(":")[0] for _ in range(6)} == {first.split(":")[0]}
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            for t in echoes:
                t.close()
