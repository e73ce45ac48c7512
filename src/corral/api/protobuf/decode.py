"""Kubernetes protobuf request bodies to the dict a JSON client would have sent.

kubectl POSTs many objects as ``application/vnd.kubernetes.protobuf`` and never
retries as JSON, so the API server must read them. The body is the magic
``k8s\\0`` followed by a runtime.Unknown whose ``raw`` holds the object's
generated message. The descriptor tables say what each field is; anything
they do not describe is refused with a BadRequest naming the message and the
field number, never dropped, so a client's data cannot silently vanish.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from corral.api.errors import BadRequest, RequestEntityTooLarge, UnsupportedMediaType
from corral.api.protobuf import wellknown
from corral.api.protobuf.schema import KINDS, MESSAGES, Field
from corral.api.protobuf.wire import (
    FIXED32,
    FIXED64,
    LEN,
    VARINT,
    WIRE_TYPE_NAMES,
    WireValue,
    as_double,
    as_float,
    as_int32,
    as_int64,
    iter_fields,
    unpack_fixed,
    unpack_varints,
)

PROTOBUF_CONTENT_TYPE = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"
MAX_BODY_BYTES = 8 * 1024 * 1024
MAX_DEPTH = 100

_SCALAR_WIRE_TYPES = {
    "string": LEN, "bytes": LEN, "raw": LEN,
    "bool": VARINT, "int32": VARINT, "int64": VARINT, "uint32": VARINT, "uint64": VARINT,
    "double": FIXED64, "float": FIXED32,
}


def decode_k8s_protobuf(body: bytes) -> dict[str, Any]:
    """Decode a whole request body; the result carries ``apiVersion`` and ``kind``.

    Raises BadRequest for malformed bytes, UnsupportedMediaType for a kind or
    encoding corral cannot read as protobuf, RequestEntityTooLarge above
    MAX_BODY_BYTES.
    """
    if len(body) > MAX_BODY_BYTES:
        raise RequestEntityTooLarge(
            f"protobuf body of {len(body)} bytes exceeds the limit of {MAX_BODY_BYTES}"
        )
    return _decode_envelope(memoryview(body), 0)


def decode_object(message: str, raw: bytes) -> dict[str, Any]:
    """Decode one object's generated message (no magic, no envelope)."""
    if message not in MESSAGES:
        raise UnsupportedMediaType(f"protobuf: no descriptor for message {message}")
    result = _decode_message(message, memoryview(raw), 0)
    assert isinstance(result, dict)
    return result


def _decode_envelope(buf: memoryview, depth: int) -> dict[str, Any]:
    if bytes(buf[: len(MAGIC)]) != MAGIC:
        raise BadRequest("protobuf: body does not start with the Kubernetes magic bytes 'k8s\\x00'")
    unknown = _decode_message("runtime.Unknown", buf[len(MAGIC) :], depth)
    type_meta = unknown.get("typeMeta", {})
    api_version, kind = type_meta.get("apiVersion", ""), type_meta.get("kind", "")
    if not api_version or not kind:
        raise BadRequest("protobuf: typeMeta must name both apiVersion and kind")
    encoding = unknown.get("contentEncoding", "")
    if encoding:
        raise UnsupportedMediaType(f"protobuf: contentEncoding {encoding!r} is not supported")
    content_type = unknown.get("contentType", "")
    raw = unknown.get("raw", b"")
    if content_type == "application/json":
        obj = wellknown.json_bytes(raw, f"{kind} {api_version}") or {}
        if not isinstance(obj, dict):
            raise BadRequest(f"protobuf: embedded JSON for {kind} {api_version} is not an object")
    elif content_type in ("", PROTOBUF_CONTENT_TYPE):
        message = KINDS.get((api_version, kind))
        if message is None:
            raise UnsupportedMediaType(
                f"protobuf: corral cannot decode kind {kind!r} of {api_version!r}; "
                "send it as application/json"
            )
        obj = _decode_message(message, memoryview(raw), depth + 1)
    else:
        raise UnsupportedMediaType(f"protobuf: embedded contentType {content_type!r} is not supported")
    return {"apiVersion": api_version, "kind": kind, **obj}


def _decode_message(name: str, buf: memoryview, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise BadRequest(f"protobuf: {name} is nested deeper than {MAX_DEPTH} messages")
    out: dict[str, Any] = {}
    _decode_into(name, buf, depth, out)
    convert = _CONVERTERS.get(name)
    if convert is not None:
        return convert(out, depth)
    return out


def _decode_into(name: str, buf: memoryview, depth: int, out: dict[str, Any]) -> None:
    fields = MESSAGES[name]
    for number, wire_type, value in iter_fields(buf):
        field = fields.get(number)
        if field is None:
            raise BadRequest(
                f"protobuf: {name} has no field number {number} "
                f"({WIRE_TYPE_NAMES[wire_type]}) that corral knows; refusing to drop it"
            )
        where = f"{name}.{field.json_name}"
        if field.inline:
            if depth + 1 > MAX_DEPTH:
                raise BadRequest(f"protobuf: {where} is nested deeper than {MAX_DEPTH} messages")
            _decode_into(field.type, _payload(where, wire_type, value), depth + 1, out)
        elif field.key_type is not None:
            key, item = _decode_map_entry(where, field, _payload(where, wire_type, value), depth + 1)
            out.setdefault(field.json_name, {})[key] = item
        elif field.repeated:
            out.setdefault(field.json_name, []).extend(
                _decode_repeated(where, field, wire_type, value, depth + 1)
            )
        else:
            item = _decode_single(where, field.type, wire_type, value, depth + 1)
            _set(out, field, item)


def _set(out: dict[str, Any], field: Field, item: Any) -> None:
    """Store a singular field: messages merge (protobuf semantics), zero scalars mean unset."""
    name = field.json_name
    if field.is_message:
        previous = out.get(name)
        out[name] = _merge(previous, item) if isinstance(previous, dict) else item
    elif field.keep_zero or item:
        out[name] = item
    else:
        out.pop(name, None)


def _merge(old: dict[str, Any], new: Any) -> Any:
    if not isinstance(new, dict):
        return new
    merged = dict(old)
    for key, value in new.items():
        before = merged.get(key)
        if isinstance(before, dict) and isinstance(value, dict):
            merged[key] = _merge(before, value)
        elif isinstance(before, list) and isinstance(value, list):
            merged[key] = before + value
        else:
            merged[key] = value
    return merged


def _payload(where: str, wire_type: int, value: WireValue) -> memoryview:
    if wire_type != LEN or not isinstance(value, memoryview):
        raise BadRequest(
            f"protobuf: {where} wants a length-delimited value, got {WIRE_TYPE_NAMES[wire_type]}"
        )
    return value


def _decode_single(where: str, type_name: str, wire_type: int, value: WireValue, depth: int) -> Any:
    if type_name in MESSAGES:
        return _decode_message(type_name, _payload(where, wire_type, value), depth)
    expected = _SCALAR_WIRE_TYPES[type_name]
    if wire_type != expected:
        raise BadRequest(
            f"protobuf: {where} is {type_name} and wants {WIRE_TYPE_NAMES[expected]}, "
            f"got {WIRE_TYPE_NAMES[wire_type]}"
        )
    return _scalar(where, type_name, value)


def _scalar(where: str, type_name: str, value: WireValue) -> Any:
    if isinstance(value, memoryview):
        if type_name == "string":
            try:
                return str(value, "utf-8")
            except UnicodeDecodeError as exc:
                raise BadRequest(f"protobuf: {where} is not valid UTF-8") from exc
        if type_name == "bytes":
            return base64.b64encode(value).decode("ascii")
        return bytes(value)
    if type_name == "bool":
        return value != 0
    if type_name == "int32":
        return as_int32(value)
    if type_name == "int64":
        return as_int64(value)
    if type_name == "uint32":
        return value & 0xFFFFFFFF
    if type_name == "double":
        return as_double(value)
    if type_name == "float":
        return as_float(value)
    return value


def _decode_repeated(
    where: str, field: Field, wire_type: int, value: WireValue, depth: int
) -> list[Any]:
    expected = _SCALAR_WIRE_TYPES.get(field.type, LEN)
    if expected == LEN or wire_type != LEN:
        return [_decode_single(where, field.type, wire_type, value, depth)]
    # A packed run of numbers.
    assert isinstance(value, memoryview)
    if expected == VARINT:
        raw = unpack_varints(value)
    else:
        raw = unpack_fixed(value, 8 if expected == FIXED64 else 4)
    return [_scalar(where, field.type, item) for item in raw]


def _zero(type_name: str, depth: int) -> Any:
    if type_name in MESSAGES:
        return _decode_message(type_name, memoryview(b""), depth)
    if type_name == "raw":
        return b""
    if type_name in ("string", "bytes"):
        return ""
    return False if type_name == "bool" else 0


def _decode_map_entry(where: str, field: Field, buf: memoryview, depth: int) -> tuple[Any, Any]:
    assert field.key_type is not None
    key: Any = None
    item: Any = None
    for number, wire_type, value in iter_fields(buf):
        if number == 1:
            key = _decode_single(f"{where} key", field.key_type, wire_type, value, depth + 1)
        elif number == 2:
            item = _decode_single(f"{where}[{key}]", field.type, wire_type, value, depth + 1)
        else:
            raise BadRequest(f"protobuf: map entry of {where} has unexpected field number {number}")
    if key is None:
        key = _zero(field.key_type, depth + 1)
    if item is None:
        item = _zero(field.type, depth + 1)
    return key, item


def _raw_extension(fields: dict[str, Any], depth: int) -> Any:
    raw = fields.get("raw", b"")
    if raw.startswith(MAGIC):
        return _decode_envelope(memoryview(raw), depth + 1)
    return wellknown.json_bytes(raw, "RawExtension")


_CONVERTERS: dict[str, Callable[[dict[str, Any], int], Any]] = {
    "meta.v1.Time": lambda fields, _: wellknown.time_json(fields),
    "meta.v1.MicroTime": lambda fields, _: wellknown.micro_time_json(fields),
    "meta.v1.Duration": lambda fields, _: wellknown.duration_json(fields),
    "meta.v1.FieldsV1": lambda fields, _: wellknown.fields_v1_json(fields),
    "resource.Quantity": lambda fields, _: wellknown.quantity_json(fields),
    "intstr.IntOrString": lambda fields, _: wellknown.int_or_string_json(fields),
    "runtime.RawExtension": _raw_extension,
}
