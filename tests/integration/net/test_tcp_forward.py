"""The userspace proxy's TCP data path on real loopback sockets: bulk data
both ways under back-pressure, half-closes, retry past a dead endpoint,
refusal without endpoints, drain after the listener closes, and the
active-connection counts least-connections relies on."""

from __future__ import annotations

import asyncio
import os
import time

import pytest
from tests.integration.net.test_proxy import eventually, free_port, random_vip

from corral.net.balancer import Balancer
from corral.net.servicetable import ListenKey
from corral.net.tcp import TcpListener


async def echo_backend() -> tuple[asyncio.Server, int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def counting_backend() -> tuple[asyncio.Server, int]:
    """Reads to EOF, then answers with how many bytes it got and closes."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.read()
        writer.write(f"got {len(data)}".encode())
        await writer.drain()
        writer.close()
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def proxy_to(*ports: int) -> tuple[TcpListener, Balancer, tuple[str, int]]:
    balancer = Balancer("round-robin", now=time.monotonic)
    balancer.set_backends([("127.0.0.1", p) for p in ports])
    key = ListenKey("TCP", random_vip(), free_port())
    listener = TcpListener(key, balancer)
    await listener.start()
    return listener, balancer, (key.ip, key.port)


async def test_bulk_both_ways_under_back_pressure() -> None:
    server, port = await echo_backend()
    listener, balancer, address = await proxy_to(port)
    try:
        reader, writer = await asyncio.open_connection(*address)
        payload = os.urandom(8 * 1024 * 1024)
        writer.write(payload)  # nobody reads the echo yet: every buffer on the way fills
        await eventually(lambda: asyncio.sleep(0, writer.transport.get_write_buffer_size() > 0),
                         "back-pressure reaches the client")
        got = await asyncio.wait_for(reader.readexactly(len(payload)), 20)
        assert got == payload
        writer.close()
    finally:
        listener.close()
        server.close()


async def test_half_close_passes_through() -> None:
    server, port = await counting_backend()
    listener, _, address = await proxy_to(port)
    try:
        reader, writer = await asyncio.open_connection(*address)
        writer.write(b"x" * 100_000)
        writer.write_eof()  # the backend answers only after our FIN reached it
        assert await asyncio.wait_for(reader.read(), 5) == b"got 100000"
        writer.close()
    finally:
        listener.close()
        server.close()


async def test_bytes_sent_before_the_backend_answers_arrive() -> None:
    server, port = await counting_backend()
    listener, _, address = await proxy_to(port)
    try:
        reader, writer = await asyncio.open_connection(*address)
        writer.write(b"early")
        writer.write_eof()
        assert await asyncio.wait_for(reader.read(), 5) == b"got 5"
    finally:
        listener.close()
        server.close()


async def test_dead_endpoint_is_skipped_and_no_endpoint_refuses() -> None:
    server, port = await echo_backend()
    dead = free_port()  # nothing listens there
    listener, balancer, address = await proxy_to(port, dead)
    try:
        for i in range(6):
            reader, writer = await asyncio.open_connection(*address)
            writer.write(b"ping %d" % i)
            assert await asyncio.wait_for(reader.readexactly(6), 5) == b"ping %d" % i
            writer.close()
        assert {b.port: b.total for b in balancer.backends} == {port: 6, dead: 0}

        balancer.set_backends([])
        reader, writer = await asyncio.open_connection(*address)
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed: no endpoint
        writer.close()
    finally:
        listener.close()
        server.close()


async def test_listener_close_drains_open_connections_and_counts_active() -> None:
    server, port = await echo_backend()
    listener, balancer, address = await proxy_to(port)
    try:
        conns = [await asyncio.open_connection(*address) for _ in range(3)]
        for reader, writer in conns:  # each is connected through once it echoes
            writer.write(b"hi")
            assert await asyncio.wait_for(reader.readexactly(2), 5) == b"hi"
        backend = balancer.backends[0]
        assert backend.active == 3

        listener.close()
        with pytest.raises(OSError):
            await asyncio.open_connection(*address)
        reader, writer = conns[0]
        writer.write(b"still")
        assert await asyncio.wait_for(reader.readexactly(5), 5) == b"still"

        for _, writer in conns:
            writer.close()
        await eventually(lambda: asyncio.sleep(0, backend.active == 0), "active count back to 0")
    finally:
        server.close()


async def test_a_backend_that_never_answers_times_out_and_the_next_is_tried(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    monkeypatch.setattr("corral.net.tcp.CONNECT_TIMEOUT", 0.3)
    stuck = socket.create_server(("127.0.0.1", 0), backlog=0)  # never accepts
    fillers = []
    for _ in range(4):  # fill its accept queue: further SYNs are dropped, connects hang
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(stuck.getsockname())
        fillers.append(s)
    server, port = await echo_backend()
    listener, balancer, address = await proxy_to(port, stuck.getsockname()[1])
    try:
        for i in range(4):
            reader, writer = await asyncio.open_connection(*address)
            writer.write(b"ping %d" % i)
            assert await asyncio.wait_for(reader.readexactly(6), 5) == b"ping %d" % i
            writer.close()
        totals = {b.port: b.total for b in balancer.backends}
        assert totals == {port: 4, stuck.getsockname()[1]: 0}, totals
    finally:
        listener.close()
        server.close()
        stuck.close()
        for s in fillers:
            s.close()
