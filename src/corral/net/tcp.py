"""TCP forwarding for the userspace proxy, on raw non-blocking sockets
driven by the event loop's reader/writer callbacks.

Each readiness event does one ``recv`` and one ``send`` straight to the
other socket; nothing is buffered in the proxy unless the peer's kernel
buffer is full, and then reading from the other side stops until it drains
(flow control). Half-closes are passed through with ``shutdown``. The
client socket is not read until the backend connection is up, so bytes a
client sends early wait in the kernel. There is no task, future, timer or
transport object per connection: on asyncio protocols the proxy spent
3.5-4 times the backend's CPU per new connection (now about 1.5 times) and
a quarter more per keep-alive request than now (bench/proxy.py, py-spy).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket

from corral.net.balancer import Backend, Balancer
from corral.net.servicetable import ListenKey

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 3.0
CONNECT_ATTEMPTS = 3
CHUNK = 256 * 1024
ACCEPTS_PER_EVENT = 64
_IN_PROGRESS = (errno.EINPROGRESS, errno.EAGAIN, errno.EALREADY)


def _settled(sock: socket.socket) -> int:
    """0 if a connect in progress is already done, its error if it failed,
    EINPROGRESS if still under way. A handshake with a local address (a
    backend on this host, most of them on one machine) completes inside
    connect() itself, which saves a trip through the event loop."""
    try:
        sock.getpeername()
        return 0
    except OSError:
        return sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) or errno.EINPROGRESS


class _End:
    """One socket of a forwarded connection and what is owed to it."""

    __slots__ = ("sock", "fd", "pending", "eof", "fin_sent", "reading")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.pending: memoryview | None = None
        """Bytes read from the other end that this one's kernel buffer had no room for."""
        self.eof = False  # this end sent FIN: nothing more to read from it
        self.fin_sent = False  # we passed the other end's FIN on to this one
        self.reading = False  # registered with the loop for reading


class _Connection:
    """A client connection, its backend connection once made, and the two
    directions between them."""

    def __init__(self, listener: TcpListener, client: socket.socket, client_ip: str) -> None:
        self.loop = listener.loop
        self.listener = listener
        self.client = _End(client)
        self.client_ip = client_ip
        self.upstream: _End | None = None
        self.backend: Backend | None = None
        self.tried: list[Backend] = []
        self.attempt: tuple[socket.socket, Backend, asyncio.TimerHandle] | None = None
        self.closed = False

    # connecting

    def connect(self) -> None:
        while len(self.tried) < CONNECT_ATTEMPTS:
            backend = self.listener.balancer.pick(self.client_ip, self.tried)
            if backend is None:
                break  # no ready endpoint: refuse by closing, as a REJECT would
            family = socket.AF_INET6 if ":" in backend.ip else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
            code = sock.connect_ex((backend.ip, backend.port))
            if code in _IN_PROGRESS:
                code = _settled(sock)
            if code == 0:
                self._connected(sock, backend)
                return
            if code in _IN_PROGRESS:
                self.loop.add_writer(sock.fileno(), self._connect_done)
                self.attempt = (sock, backend, self.loop.call_later(CONNECT_TIMEOUT, self._connect_failed))
                return
            sock.close()
            self.tried.append(backend)
        self.close()

    def _connect_done(self) -> None:
        assert self.attempt is not None
        sock, backend, timer = self.attempt
        if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0:
            self._connect_failed()
            return
        self.loop.remove_writer(sock.fileno())
        timer.cancel()
        self.attempt = None
        self._connected(sock, backend)

    def _connect_failed(self) -> None:
        assert self.attempt is not None
        sock, backend, timer = self.attempt
        self.attempt = None
        timer.cancel()
        self.loop.remove_writer(sock.fileno())
        sock.close()
        self.tried.append(backend)
        self.connect()

    def _connected(self, sock: socket.socket, backend: Backend) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.upstream, self.backend = _End(sock), backend
        backend.active += 1
        backend.total += 1
        self._read(self.client, self.upstream)
        self._read(self.upstream, self.client)

    def _read(self, src: _End, dst: _End) -> None:
        self.loop.add_reader(src.fd, self._readable, src, dst)
        src.reading = True

    def _stop_reading(self, src: _End) -> None:
        self.loop.remove_reader(src.fd)
        src.reading = False

    # forwarding

    def _readable(self, src: _End, dst: _End) -> None:
        try:
            data = src.sock.recv(CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.close()
            return
        if not data:
            self._stop_reading(src)
            src.eof = True
            if dst.pending is None:
                self._pass_eof(dst)
            return
        try:
            sent = dst.sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self.close()
            return
        if sent < len(data):
            # dst is full: hold the rest and stop reading src until it drains
            dst.pending = memoryview(data)[sent:]
            self._stop_reading(src)
            self.loop.add_writer(dst.fd, self._writable, src, dst)

    def _writable(self, src: _End, dst: _End) -> None:
        assert dst.pending is not None
        try:
            sent = dst.sock.send(dst.pending)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.close()
            return
        dst.pending = dst.pending[sent:] if sent < len(dst.pending) else None
        if dst.pending is not None:
            return
        self.loop.remove_writer(dst.fd)
        if src.eof:
            self._pass_eof(dst)
        else:
            self._read(src, dst)

    def _pass_eof(self, dst: _End) -> None:
        """The other end finished and all it sent reached ``dst``."""
        dst.fin_sent = True
        assert self.upstream is not None
        if self.client.fin_sent and self.upstream.fin_sent:
            self.close()  # both directions finished
            return
        try:
            dst.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.attempt is not None:
            sock, _, timer = self.attempt
            timer.cancel()
            self.loop.remove_writer(sock.fileno())
            sock.close()
        for end in (self.client, self.upstream):
            if end is not None:
                # only what is registered: each removal is a selector lookup
                if end.reading:
                    self.loop.remove_reader(end.fd)
                if end.pending is not None:
                    self.loop.remove_writer(end.fd)
                end.sock.close()
        if self.backend is not None:
            self.backend.active -= 1
            self.backend = None


class TcpListener:
    """One listening socket in front of one service port's balancer."""

    def __init__(self, key: ListenKey, balancer: Balancer) -> None:
        self.key = key
        self.balancer = balancer
        self.sock: socket.socket | None = None
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in self.key.ip else socket.AF_INET
        sock = socket.create_server((self.key.ip, self.key.port), family=family, backlog=1024)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # accepted sockets inherit it
        sock.setblocking(False)
        self.sock = sock
        self.loop.add_reader(sock.fileno(), self._accept)

    def _accept(self) -> None:
        assert self.sock is not None
        for _ in range(ACCEPTS_PER_EVENT):
            try:
                client, peer = self.sock.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as exc:
                # out of descriptors, say: back off instead of spinning
                log.warning("proxy: accept on %s:%d failed: %s", self.key.ip, self.key.port, exc)
                self.loop.remove_reader(self.sock.fileno())
                self.loop.call_later(1.0, self._resume)
                return
            client.setblocking(False)  # TCP_NODELAY comes from the listening socket
            _Connection(self, client, str(peer[0])).connect()

    def _resume(self) -> None:
        if self.sock is not None:
            self.loop.add_reader(self.sock.fileno(), self._accept)

    def close(self) -> None:
        """Stop accepting; open connections are drained, not cut."""
        if self.sock is not None:
            self.loop.remove_reader(self.sock.fileno())
            self.sock.close()
            self.sock = None
