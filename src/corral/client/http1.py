"""A lean HTTP/1.1 transport for the API client's request/response calls.

Every corral component talks to the API server through
:class:`corral.client.api.ApiClient`, and most of what they send is small
unary requests: a pod create, a binding, a status write, an Event. Through
aiohttp's client each of those cost ~150-250 µs of CPU on the caller's side
(URL objects, header multidicts, timers, a response object and stream per
request) — as much as the server spent answering a GET over the local
socket. This transport does only what those calls need: keep-alive
connections in a pool (one request in flight per connection, no
pipelining), a request written as one buffer, a response read by one
protocol object into bytes (Content-Length, chunked, or until the server
closes). Watches and upgrades stay on aiohttp, whose streaming they use.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from urllib.parse import urlsplit

MAX_HEAD = 64 * 1024
"""A response head larger than this is not an API server's."""


class Http1Error(Exception):
    """The exchange failed below HTTP. ``never_sent`` says the request
    cannot have reached the server (the connection was never made), so it
    is safe to send it elsewhere whatever its method."""

    def __init__(self, message: str, *, never_sent: bool = False) -> None:
        super().__init__(message)
        self.never_sent = never_sent


class _Response:
    """Incremental parse of one response from the bytes a connection gets."""

    __slots__ = ("head_done", "status", "length", "chunked", "close", "parts", "size", "_chunk_left", "done",
                 "_trailers", "no_body")

    def __init__(self, no_body: bool) -> None:
        self.head_done = False
        self.status = 0
        self.length: int | None = None
        self.chunked = False
        self.close = False
        self.parts: list[bytes] = []
        self.size = 0
        self._chunk_left = -1  # -1: a chunk-size line is next
        self._trailers = False
        self.done = False
        self.no_body = no_body

    def body(self) -> bytes:
        return self.parts[0] if len(self.parts) == 1 else b"".join(self.parts)

    def feed(self, buf: bytearray) -> None:
        """Consume what it can of ``buf`` (removing it); sets ``done``."""
        if not self.head_done:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD:
                    raise Http1Error("the response head is too large")
                return
            head = bytes(buf[:end])
            del buf[:end + 4]
            self._head(head)
            if self.done or not self.head_done:
                return
        if self.chunked:
            self._feed_chunked(buf)
        elif self.length is not None:
            take = min(len(buf), self.length - self.size)
            if take:
                self.parts.append(bytes(buf[:take]))
                del buf[:take]
                self.size += take
            self.done = self.size >= self.length
        else:  # delimited by the end of the connection
            if buf:
                self.parts.append(bytes(buf))
                self.size += len(buf)
                buf.clear()

    def _head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise Http1Error(f"not an HTTP/1.1 response: {lines[0][:80]!r}")
        status = int(parts[1])
        if 100 <= status < 200:  # an interim response: the real one follows
            return
        self.status = status
        self.close = parts[0] == b"HTTP/1.0"
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                try:
                    self.length = int(value.strip())
                except ValueError:
                    raise Http1Error(f"bad Content-Length: {value.strip()[:40]!r}") from None
            elif name == b"transfer-encoding":
                self.chunked = b"chunked" in value.lower()
            elif name == b"connection":
                token = value.strip().lower()
                if token == b"close":
                    self.close = True
                elif token == b"keep-alive":
                    self.close = False
        self.head_done = True
        if self.no_body or status in (204, 304):
            self.length, self.chunked = 0, False
        if self.length == 0 and not self.chunked:
            self.done = True
        elif self.length is None and not self.chunked:
            self.close = True  # the body ends with the connection

    def _feed_chunked(self, buf: bytearray) -> None:
        while buf and not self.done:
            if self._trailers:
                end = buf.find(b"\r\n")
                if end < 0:
                    return
                line = buf[:end]
                del buf[:end + 2]
                self.done = not line  # an empty line ends the trailers
                continue
            if self._chunk_left < 0:
                end = buf.find(b"\r\n")
                if end < 0:
                    if len(buf) > 1024:
                        raise Http1Error("a chunk-size line is too long")
                    return
                size_text = bytes(buf[:end]).split(b";", 1)[0].strip()
                del buf[:end + 2]
                try:
                    size = int(size_text, 16)
                except ValueError:
                    raise Http1Error(f"bad chunk size: {size_text[:20]!r}") from None
                if size == 0:
                    self._trailers = True
                    continue
                self._chunk_left = size + 2  # the data and its CRLF
                continue
            take = min(len(buf), self._chunk_left)
            data = bytes(buf[:take])
            del buf[:take]
            self._chunk_left -= take
            if self._chunk_left < 2:  # part of this piece is the trailing CRLF
                data = data[:len(data) - (2 - self._chunk_left)]
            if data:
                self.parts.append(data)
                self.size += len(data)
            if self._chunk_left == 0:
                self._chunk_left = -1


class _Connection(asyncio.Protocol):
    __slots__ = ("transport", "buf", "response", "waiter", "lost", "idle_since")

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.response: _Response | None = None
        self.waiter: asyncio.Future[_Response] | None = None
        self.lost = False
        self.idle_since = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        response, waiter = self.response, self.waiter
        if response is None or waiter is None or waiter.done():
            return  # bytes nobody asked for: the connection is not reused
        try:
            response.feed(self.buf)
        except Http1Error as exc:
            waiter.set_exception(exc)
            return
        if response.done:
            waiter.set_result(response)

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        response, waiter = self.response, self.waiter
        if waiter is None or waiter.done():
            return
        if response is not None and response.head_done and response.length is None and not response.chunked:
            waiter.set_result(response)  # a body delimited by the close
        else:
            waiter.set_exception(Http1Error(f"the server closed the connection ({exc or 'EOF'})"))

    def exchange(self, request: bytes, no_body: bool) -> asyncio.Future[_Response]:
        assert self.transport is not None
        self.buf.clear()
        self.response = _Response(no_body)
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return self.waiter

    def reusable(self) -> bool:
        return (not self.lost and self.transport is not None and not self.transport.is_closing()
                and self.response is not None and self.response.done and not self.response.close
                and not self.buf)

    def close(self) -> None:
        self.lost = True
        if self.transport is not None:
            self.transport.close()


def _expire(waiter: asyncio.Future[_Response]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class Http1Pool:
    """Keep-alive connections to the servers of one cluster, at most
    ``limit`` in use at once (more callers wait, as with aiohttp's
    connector limit); idle ones are dropped after ``keepalive`` seconds,
    before the server would close them under a request."""

    def __init__(self, *, ssl_context: ssl.SSLContext | bool = False, unix_socket: str | None = None,
                 limit: int = 100, keepalive: float = 60.0) -> None:
        self.ssl_context = ssl_context
        self.unix_socket = unix_socket
        self.keepalive = keepalive
        self._slots = asyncio.Semaphore(limit)
        self._idle: dict[str, deque[_Connection]] = {}
        self._closed = False

    async def request(self, server: str, method: str, target: str, head: bytes, body: bytes | None,
                      timeout: float) -> tuple[int, bytes]:
        """Send ``method target`` to ``server`` (a base URL) with the header
        lines ``head`` (each ending in CRLF, no Host or Content-Length) and
        return the status and body."""
        if self._closed:
            raise Http1Error("the client is closed", never_sent=True)
        request = self._encode(server, method, target, head, body)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with self._slots:
            conn = self._take_idle(server)
            try:
                if conn is None:
                    async with asyncio.timeout_at(deadline):
                        conn = await self._connect(server)
                # A bare timer, not asyncio.timeout(): the exchange is most
                # requests' whole life, and the context manager's task
                # bookkeeping showed in the profile of a pod burst.
                waiter = conn.exchange(request, no_body=method == "HEAD")
                timer = loop.call_at(deadline, _expire, waiter)
                try:
                    response = await waiter
                finally:
                    timer.cancel()
            except BaseException:
                if conn is not None:
                    conn.close()  # mid-exchange: its state is unknown
                raise
            if conn.reusable() and not self._closed:
                conn.idle_since = time.monotonic()
                self._idle.setdefault(server, deque()).append(conn)
            else:
                conn.close()
            return response.status, response.body()

    def _encode(self, server: str, method: str, target: str, head: bytes, body: bytes | None) -> bytes:
        host = "localhost" if self.unix_socket else (urlsplit(server).netloc or "localhost")
        first = f"{method} {target} HTTP/1.1\r\nHost: {host}\r\n".encode()
        if body is None:
            return first + head + (b"Content-Length: 0\r\n\r\n" if method in ("POST", "PUT", "PATCH") else b"\r\n")
        return b"".join((first, head, b"Content-Length: %d\r\n\r\n" % len(body), body))

    def _take_idle(self, server: str) -> _Connection | None:
        idle = self._idle.get(server)
        if not idle:
            return None
        too_old = time.monotonic() - self.keepalive
        while idle:
            conn = idle.pop()  # the most recently used: the least likely to be closing
            if conn.idle_since >= too_old and not conn.lost and not conn.buf and conn.transport is not None \
                    and not conn.transport.is_closing():  # bytes while idle: not a clean connection
                return conn
            conn.close()
        return None

    async def _connect(self, server: str) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            if self.unix_socket:
                _, conn = await loop.create_unix_connection(_Connection, self.unix_socket)
            else:
                parts = urlsplit(server)
                tls = parts.scheme == "https"
                port = parts.port or (443 if tls else 80)
                _, conn = await loop.create_connection(
                    _Connection, parts.hostname, port,
                    ssl=(self.ssl_context or True) if tls else None,
                    server_hostname=parts.hostname if tls else None)
        except (OSError, ssl.SSLError) as exc:
            raise Http1Error(f"cannot connect to {server}: {exc!r}", never_sent=True) from exc
        return conn

    def close(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()
