"""JSON forms of the apimachinery types that are not plain objects in JSON.

Each converter gets the decoded fields of its message (as named in
``descriptors/wellknown.py``) and returns what Kubernetes' JSON encoding of
the same Go value would be, so a protobuf client and a JSON client leave the
same object behind.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from corral.api.errors import BadRequest

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Go's zero time.Time (0001-01-01T00:00:00Z) as Unix seconds: JSON null.
_GO_ZERO_TIME_SECONDS = -62135596800


def _utc(seconds: int, what: str) -> datetime:
    try:
        return _EPOCH + timedelta(seconds=seconds)
    except OverflowError as exc:
        raise BadRequest(f"protobuf: {what} seconds {seconds} is out of range") from exc


def _date_time(moment: datetime) -> str:
    # Formatted by hand: strftime does not zero-pad years before 1000.
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
        f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
    )


def time_json(fields: dict[str, Any]) -> str | None:
    """metav1.Time: RFC 3339 in whole seconds; Kubernetes drops the nanos on decode."""
    if not fields:
        return None
    seconds = fields.get("seconds", 0)
    if seconds == _GO_ZERO_TIME_SECONDS:
        return None
    return _date_time(_utc(seconds, "Time")) + "Z"


def micro_time_json(fields: dict[str, Any]) -> str | None:
    """metav1.MicroTime: RFC 3339 with exactly six fractional digits."""
    if not fields:
        return None
    carry, nanos = divmod(fields.get("nanos", 0), 1_000_000_000)
    seconds = fields.get("seconds", 0) + carry
    if seconds == _GO_ZERO_TIME_SECONDS and nanos == 0:
        return None
    return f"{_date_time(_utc(seconds, 'MicroTime'))}.{nanos // 1000:06d}Z"


def _decimal(value: int, digits: int) -> str:
    whole, frac = divmod(value, 10**digits)
    text = f"{frac:0{digits}d}".rstrip("0")
    return f"{whole}.{text}" if text else str(whole)


def go_duration(nanoseconds: int) -> str:
    """Go's time.Duration.String(), the JSON form of metav1.Duration (``1h2m3.5s``)."""
    if nanoseconds == 0:
        return "0s"
    sign = "-" if nanoseconds < 0 else ""
    u = abs(nanoseconds)
    if u < 1000:
        return f"{sign}{u}ns"
    if u < 1_000_000:
        return f"{sign}{_decimal(u, 3)}µs"
    if u < 1_000_000_000:
        return f"{sign}{_decimal(u, 6)}ms"
    text = _decimal(u % 60_000_000_000, 9) + "s"
    minutes = u // 60_000_000_000
    if minutes:
        text = f"{minutes % 60}m{text}"
        hours = minutes // 60
        if hours:
            text = f"{hours}h{text}"
    return sign + text


def duration_json(fields: dict[str, Any]) -> str:
    return go_duration(fields.get("duration", 0))


def quantity_json(fields: dict[str, Any]) -> str:
    # Kubernetes always writes the canonical string; an empty one is the zero Quantity.
    return fields.get("string") or "0"


def int_or_string_json(fields: dict[str, Any]) -> int | str:
    kind = fields.get("type", 0)
    if kind == 0:
        return int(fields.get("intVal", 0))
    if kind == 1:
        return str(fields.get("strVal", ""))
    raise BadRequest(f"protobuf: IntOrString has unknown type {kind} (want 0 for int, 1 for string)")


def json_bytes(raw: bytes, what: str) -> Any:
    """Parse embedded JSON (FieldsV1, RawExtension); empty means null as in Go."""
    if not raw:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"protobuf: {what} does not hold valid JSON: {exc}") from exc


def fields_v1_json(fields: dict[str, Any]) -> Any:
    return json_bytes(fields.get("Raw", b""), "FieldsV1")
