"""The server side of a SPDY/3.1 session, as kubectl's port-forward speaks it.

kubectl 1.32 tunnels SPDY through a WebSocket (subprotocol
``SPDY/3.1+portforward.k8s.io``): the binary messages carry a SPDY byte
stream, which this module parses into frames. Only what Kubernetes' streams
use is here: SYN_STREAM (answered at once by SYN_REPLY), DATA with FIN
half-closes, RST_STREAM, PING (echoed), GOAWAY; SETTINGS and WINDOW_UPDATE
are read and ignored (the Go implementation kubectl uses does no flow
control either).

Header blocks are zlib streams primed with SPDY/3's dictionary; each
direction keeps one compression context for the whole session.
"""

from __future__ import annotations

import asyncio
import struct
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 1, 2, 3, 4, 6, 7, 8, 9
FLAG_FIN = 0x01
RST_CANCEL = 5
MAX_FRAME = 1 << 24
MAX_HEADER_BLOCK = 1 << 16
CHUNK = 32 * 1024

_WORDS = (
    "options head post put delete trace accept accept-charset accept-encoding accept-language "
    "accept-ranges age allow authorization cache-control connection content-base content-encoding "
    "content-language content-length content-location content-md5 content-range content-type date "
    "etag expect expires from host if-match if-modified-since if-none-match if-range "
    "if-unmodified-since last-modified location max-forwards pragma proxy-authenticate "
    "proxy-authorization range referer retry-after server te trailer transfer-encoding upgrade "
    "user-agent vary via warning www-authenticate method get status"
).split() + ["200 OK", "version", "HTTP/1.1", "url", "public", "set-cookie", "keep-alive", "origin"]
_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request"
    "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented"
    "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 "
    "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,"
    "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age="
    "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)
DICTIONARY = b"".join(struct.pack(">I", len(w)) + w.encode() for w in _WORDS) + _TAIL.encode()
"""SPDY/3's header-compression dictionary (1423 bytes, Adler-32 0xe3c6a7c2)."""


class ProtocolError(Exception):
    """The peer sent something that is not SPDY/3 as we understand it."""


def encode_headers(headers: dict[str, str]) -> bytes:
    """A name/value block (before compression): lower-case names, as on the wire."""
    out = [struct.pack(">I", len(headers))]
    for name, value in headers.items():
        n, v = name.lower().encode(), value.encode()
        out += [struct.pack(">I", len(n)), n, struct.pack(">I", len(v)), v]
    return b"".join(out)


def decode_headers(block: bytes) -> dict[str, str]:
    try:
        (count,), pos, out = struct.unpack_from(">I", block), 4, {}
        for _ in range(count):
            (n,) = struct.unpack_from(">I", block, pos)
            name = block[pos + 4 : pos + 4 + n].decode()
            pos += 4 + n
            (v,) = struct.unpack_from(">I", block, pos)
            out[name.lower()] = block[pos + 4 : pos + 4 + v].decode()
            pos += 4 + v
    except (struct.error, UnicodeDecodeError) as exc:
        raise ProtocolError(f"malformed header block: {exc}") from exc
    return out


def control_frame(kind: int, flags: int, payload: bytes) -> bytes:
    return struct.pack(">HHI", 0x8000 | VERSION, kind, (flags << 24) | len(payload)) + payload


def data_frame(stream_id: int, data: bytes, fin: bool = False) -> bytes:
    return struct.pack(">II", stream_id & 0x7FFFFFFF, ((FLAG_FIN if fin else 0) << 24) | len(data)) + data


@dataclass
class Stream:
    """One SPDY stream as the server sees it: what the client sends arrives
    on ``incoming`` (None once it half-closed)."""

    id: int
    headers: dict[str, str]
    incoming: asyncio.Queue[bytes | None] = field(default_factory=asyncio.Queue)
    remote_closed: bool = False
    local_closed: bool = False


class Session:
    """Frames in through :meth:`feed`, frames out through ``send``;
    ``on_stream`` is called for every stream the client opens."""

    def __init__(self, send: Callable[[bytes], Awaitable[None]], on_stream: Callable[[Stream], None]) -> None:
        self._send = send
        self._on_stream = on_stream
        self._buffer = bytearray()
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)
        self._deflate = zlib.compressobj(zdict=DICTIONARY)
        self._write_lock = asyncio.Lock()
        self.streams: dict[int, Stream] = {}
        self.closed = asyncio.Event()

    async def feed(self, data: bytes) -> None:
        self._buffer += data
        while len(self._buffer) >= 8:
            (length,) = struct.unpack_from(">I", self._buffer, 4)
            length &= 0xFFFFFF
            if len(self._buffer) < 8 + length:
                return
            frame = bytes(self._buffer[: 8 + length])
            del self._buffer[: 8 + length]
            await self._frame(frame)

    async def _frame(self, frame: bytes) -> None:
        first, second = struct.unpack_from(">HH", frame)
        flags, payload = frame[4], frame[8:]
        if not first & 0x8000:
            self._data(((first << 16) | second) & 0x7FFFFFFF, flags, payload)
            return
        if first & 0x7FFF != VERSION:
            raise ProtocolError(f"SPDY version {first & 0x7FFF} is not supported")
        if second == SYN_STREAM:
            await self._syn_stream(flags, payload)
        elif second == RST_STREAM:
            self._end(struct.unpack_from(">I", payload)[0] & 0x7FFFFFFF, reset=True)
        elif second == PING:
            await self._write(control_frame(PING, 0, payload[:4]))
        elif second == GOAWAY:
            self.closed.set()
        elif second == HEADERS:
            self._inflated(payload[4:])  # keeps the shared zlib context in step

    async def _syn_stream(self, flags: int, payload: bytes) -> None:
        if len(payload) < 10:
            raise ProtocolError("SYN_STREAM too short")
        stream_id = struct.unpack_from(">I", payload)[0] & 0x7FFFFFFF
        stream = Stream(stream_id, decode_headers(self._inflated(payload[10:])))
        self.streams[stream_id] = stream
        await self._write(control_frame(SYN_REPLY, 0, struct.pack(">I", stream_id) + self._deflated({})))
        if flags & FLAG_FIN:
            self._end(stream_id)
        self._on_stream(stream)

    def _inflated(self, block: bytes) -> bytes:
        try:
            out = self._inflate.decompress(block, MAX_HEADER_BLOCK)
        except zlib.error as exc:
            raise ProtocolError(f"header block does not decompress: {exc}") from exc
        if self._inflate.unconsumed_tail:
            raise ProtocolError("header block too large")
        return out

    def _deflated(self, headers: dict[str, str]) -> bytes:
        return self._deflate.compress(encode_headers(headers)) + self._deflate.flush(zlib.Z_SYNC_FLUSH)

    def _data(self, stream_id: int, flags: int, payload: bytes) -> None:
        stream = self.streams.get(stream_id)
        if stream is None or stream.remote_closed:
            return  # a stream we reset or never saw: drop, as SPDY allows
        if payload:
            stream.incoming.put_nowait(payload)
        if flags & FLAG_FIN:
            self._end(stream_id)

    def _end(self, stream_id: int, *, reset: bool = False) -> None:
        stream = self.streams.get(stream_id)
        if stream is None or stream.remote_closed:
            return
        stream.remote_closed = True
        stream.incoming.put_nowait(None)
        if reset:
            stream.local_closed = True

    async def send_data(self, stream: Stream, data: bytes, *, fin: bool = False) -> None:
        if stream.local_closed or self.closed.is_set():
            return
        for start in range(0, len(data), CHUNK):
            last = start + CHUNK >= len(data)
            await self._write(data_frame(stream.id, data[start : start + CHUNK], fin and last))
        if not data and fin:
            await self._write(data_frame(stream.id, b"", True))
        if fin:
            stream.local_closed = True

    async def close_stream(self, stream: Stream) -> None:
        await self.send_data(stream, b"", fin=True)

    async def _write(self, frame: bytes) -> None:
        async with self._write_lock:
            await self._send(frame)

    def end_all(self) -> None:
        """The transport is gone: every stream's reader sees the end."""
        self.closed.set()
        for stream_id in list(self.streams):
            self._end(stream_id, reset=True)
