"""The SPDY/3.1 server session kubectl's port-forward talks to."""

from __future__ import annotations

import struct
import zlib

import pytest

from corral.agent.spdy import (
    DICTIONARY,
    FLAG_FIN,
    PING,
    SYN_REPLY,
    SYN_STREAM,
    ProtocolError,
    Session,
    Stream,
    control_frame,
    data_frame,
    decode_headers,
    encode_headers,
)


def test_dictionary_is_spdy3s():
    assert len(DICTIONARY) == 1423 and zlib.adler32(DICTIONARY) == 0xE3C6A7C2


def test_header_block_roundtrip_lowercases_names():
    assert decode_headers(encode_headers({"streamType": "data", "Port": "80"})) == {"streamtype": "data", "port": "80"}
    with pytest.raises(ProtocolError):
        decode_headers(b"\x00\x00\x00\x02\x00\x00\x00\x09abc")


class _Client:
    """What the Go side does: one deflate context with the dictionary."""

    def __init__(self) -> None:
        self.deflate = zlib.compressobj(zdict=DICTIONARY)

    def syn_stream(self, stream_id: int, headers: dict[str, str], fin: bool = False) -> bytes:
        block = self.deflate.compress(encode_headers(headers)) + self.deflate.flush(zlib.Z_SYNC_FLUSH)
        body = struct.pack(">IIH", stream_id, 0, 0) + block
        return control_frame(SYN_STREAM, FLAG_FIN if fin else 0, body)


async def test_streams_are_replied_to_and_carry_data_and_fin():
    sent: list[bytes] = []
    opened: list[Stream] = []

    async def send(frame: bytes) -> None:
        sent.append(frame)

    session = Session(send, opened.append)
    client = _Client()
    wire = client.syn_stream(1, {"streamType": "error", "port": "80", "requestID": "0"}, fin=True)
    wire += client.syn_stream(3, {"streamType": "data", "port": "80", "requestID": "0"})
    wire += data_frame(3, b"hello") + data_frame(3, b"", fin=True) + control_frame(PING, 0, b"\x00\x00\x00\x01")
    for i in range(0, len(wire), 7):  # frames split across transport messages
        await session.feed(wire[i : i + 7])
    assert [s.headers["streamtype"] for s in opened] == ["error", "data"]
    assert opened[0].remote_closed and await opened[0].incoming.get() is None
    assert await opened[1].incoming.get() == b"hello" and await opened[1].incoming.get() is None
    replies = [f for f in sent if struct.unpack_from(">HH", f)[1] == SYN_REPLY]
    assert [struct.unpack_from(">I", f, 8)[0] for f in replies] == [1, 3]
    inflate = zlib.decompressobj(zdict=DICTIONARY)
    assert decode_headers(inflate.decompress(replies[0][12:])) == {}
    assert sent[-1] == control_frame(PING, 0, b"\x00\x00\x00\x01")

    sent.clear()
    await session.send_data(opened[1], b"x" * 70_000, fin=True)
    lengths = [struct.unpack_from(">I", f, 4)[0] & 0xFFFFFF for f in sent]
    assert sum(lengths) == 70_000 and sent[-1][4] == FLAG_FIN and all(f[4] == 0 for f in sent[:-1])
    await session.send_data(opened[1], b"late")
    assert len(sent) == len(lengths)  # nothing after our FIN


async def test_a_frame_of_another_version_is_refused():
    async def send(frame: bytes) -> None:
        pass

    session = Session(send, lambda s: None)
    with pytest.raises(ProtocolError, match="version 2"):
        await session.feed(struct.pack(">HHI", 0x8002, SYN_STREAM, 0))
