"""The protobuf wire format, read without generated code.

Only what Kubernetes objects use: varints, fixed 32/64-bit values and
length-delimited payloads (strings, bytes, sub-messages, packed repeated
numbers). Groups (wire types 3 and 4) were never used by Kubernetes and are
rejected. Every malformed input raises :class:`BadRequest` naming where
it went wrong, because the bytes come straight from a client.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from corral.api.errors import BadRequest

VARINT = 0
FIXED64 = 1
LEN = 2
FIXED32 = 5

WIRE_TYPE_NAMES = {VARINT: "varint", FIXED64: "fixed64", LEN: "length-delimited", FIXED32: "fixed32"}

_MAX_VARINT_BYTES = 10
_MAX_FIELD_NUMBER = (1 << 29) - 1

WireValue = int | memoryview


def read_varint(buf: memoryview, pos: int) -> tuple[int, int]:
    """Return the unsigned varint at ``pos`` and the position after it."""
    result = 0
    shift = 0
    end = len(buf)
    for i in range(_MAX_VARINT_BYTES):
        if pos >= end:
            raise BadRequest("protobuf: truncated varint")
        byte = buf[pos]
        pos += 1
        if i == _MAX_VARINT_BYTES - 1 and byte > 1:
            raise BadRequest("protobuf: varint overflows 64 bits")
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
    raise BadRequest("protobuf: varint longer than 10 bytes")


def iter_fields(buf: memoryview) -> Iterator[tuple[int, int, WireValue]]:
    """Yield ``(field number, wire type, value)`` for each field of one message.

    Values are ints for varint and fixed wire types (fixed ones as their
    unsigned bit pattern) and zero-copy memoryviews for length-delimited ones.
    """
    pos = 0
    end = len(buf)
    while pos < end:
        tag, pos = read_varint(buf, pos)
        number, wire_type = tag >> 3, tag & 7
        if number == 0 or number > _MAX_FIELD_NUMBER:
            raise BadRequest(f"protobuf: invalid field number {number}")
        if wire_type == VARINT:
            value, pos = read_varint(buf, pos)
            yield number, wire_type, value
        elif wire_type == LEN:
            length, pos = read_varint(buf, pos)
            if length > end - pos:
                raise BadRequest(
                    f"protobuf: field {number} claims {length} bytes but only {end - pos} remain"
                )
            yield number, wire_type, buf[pos : pos + length]
            pos += length
        elif wire_type in (FIXED64, FIXED32):
            size = 8 if wire_type == FIXED64 else 4
            if size > end - pos:
                raise BadRequest(f"protobuf: truncated fixed-width field {number}")
            yield number, wire_type, int.from_bytes(buf[pos : pos + size], "little")
            pos += size
        else:
            raise BadRequest(f"protobuf: unsupported wire type {wire_type} for field {number}")


def unpack_varints(buf: memoryview) -> list[int]:
    """Decode a packed repeated varint payload."""
    values: list[int] = []
    pos = 0
    while pos < len(buf):
        value, pos = read_varint(buf, pos)
        values.append(value)
    return values


def unpack_fixed(buf: memoryview, size: int) -> list[int]:
    """Decode a packed repeated fixed32/fixed64 payload as unsigned bit patterns."""
    if len(buf) % size:
        raise BadRequest(f"protobuf: packed fixed{size * 8} payload of {len(buf)} bytes")
    return [int.from_bytes(buf[i : i + size], "little") for i in range(0, len(buf), size)]


def as_int32(value: int) -> int:
    """Negative int32s travel as 64-bit two's complement varints; keep the low 32 bits."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def as_int64(value: int) -> int:
    value &= 0xFFFFFFFFFFFFFFFF
    return value - (1 << 64) if value >= 1 << 63 else value


def as_double(bits: int) -> float:
    return float(struct.unpack("<d", bits.to_bytes(8, "little"))[0])


def as_float(bits: int) -> float:
    return float(struct.unpack("<f", bits.to_bytes(4, "little"))[0])
