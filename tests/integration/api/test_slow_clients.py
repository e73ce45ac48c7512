"""Slow clients lose their connections (slowloris), over raw TLS sockets:
headers that trickle in, a connection that never sends a request, a TLS
handshake that never starts, a body that never completes. A connection that
is merely idle between requests is left alone."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from corral.api.ratelimit import LimitSettings
from corral.api.security import SecurityOptions
from corral.testing import TestServer, running_server

TIMEOUT = 1.0
BOUND = TIMEOUT + 4.0  # closed by then, whatever the machine's load


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[TestServer]:
    limits = LimitSettings(header_timeout=TIMEOUT, body_timeout=TIMEOUT)
    async with running_server(tmp_path, security=SecurityOptions(limits=limits)) as srv:
        yield srv


def tls_socket(srv: TestServer) -> ssl.SSLSocket:
    ctx = ssl.create_default_context(cafile=str(srv.ca_file))
    raw = socket.create_connection(("127.0.0.1", srv.port), timeout=BOUND + 5)
    return ctx.wrap_socket(raw, server_hostname="127.0.0.1")


def seconds_until_closed(sock: socket.socket, dribble: bytes = b"") -> float:
    """Send ``dribble`` a byte every 0.2 s (then nothing) until the server
    closes; returns how long that took."""
    started = time.monotonic()
    sock.settimeout(0.2)
    for i in range(int(BOUND / 0.2) + 10):
        try:
            if i < len(dribble):
                sock.sendall(dribble[i:i + 1])
            if sock.recv(65536) == b"":
                return time.monotonic() - started
        except TimeoutError:
            continue
        except (ConnectionError, ssl.SSLError, OSError):
            return time.monotonic() - started
    raise AssertionError("the server kept the connection open")


def response(sock: ssl.SSLSocket) -> bytes:
    sock.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
    while len(rest) < length:
        rest += sock.recv(65536)
    return head


def get_version(srv: TestServer) -> bytes:
    return f"GET /version HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {srv.token}\r\n\r\n".encode()


async def test_headers_that_trickle_in_get_the_connection_closed(server: TestServer) -> None:
    def run() -> float:
        with tls_socket(server) as sock:
            return seconds_until_closed(sock, get_version(server)[:-2] + b"X-Slow: " + b"a" * 100)

    took = await asyncio.to_thread(run)
    assert TIMEOUT * 0.8 <= took <= BOUND


async def test_a_connection_that_sends_nothing_is_closed(server: TestServer) -> None:
    def run() -> tuple[float, float]:
        with tls_socket(server) as sock:
            after_handshake = seconds_until_closed(sock)
        with socket.create_connection(("127.0.0.1", server.port)) as plain:  # not even a ClientHello
            return after_handshake, seconds_until_closed(plain)

    after_handshake, no_handshake = await asyncio.to_thread(run)
    assert after_handshake <= BOUND and no_handshake <= BOUND


async def test_a_body_that_never_completes_is_408_then_closed(server: TestServer) -> None:
    def run() -> tuple[bytes, float]:
        with tls_socket(server) as sock:
            sock.sendall(
                b"POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                + f"Authorization: Bearer {server.token}\r\n".encode()
                + b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"kind\":")
            head = response(sock)
            return head, seconds_until_closed(sock)

    head, took = await asyncio.to_thread(run)
    assert head.startswith(b"HTTP/1.1 408"), head
    assert took <= BOUND


async def test_an_idle_keep_alive_connection_between_requests_is_kept(server: TestServer) -> None:
    def run() -> tuple[bytes, bytes]:
        with tls_socket(server) as sock:
            sock.sendall(get_version(server))
            first = response(sock)
            time.sleep(TIMEOUT * 2)  # idle, not slow: no request has begun
            sock.sendall(get_version(server))
            return first, response(sock)

    first, second = await asyncio.to_thread(run)
    assert first.startswith(b"HTTP/1.1 200") and second.startswith(b"HTTP/1.1 200")
