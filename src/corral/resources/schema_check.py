"""Checks a decoded object against its kind's schema: unknown fields (for
``fieldValidation=Strict``/``Warn``), duplicate fields in the raw JSON, and
values of the wrong JSON type.

Kubernetes finds these while decoding JSON into Go structs; we decode into
plain dicts and walk the schema once instead. The messages copy what the Go
decoder says, because users search the web for them:

* ``Deployment in version "v1" cannot be handled as a Deployment: strict
  decoding error: unknown field "spec.foo"`` (400 BadRequest)
* ``... cannot be handled as a Deployment: json: cannot unmarshal string into
  Go struct field DeploymentSpec.spec.replicas of type int32`` (400 BadRequest)

This runs on every write, so the walk does no work for a field that is fine
beyond one dict lookup and one isinstance check, and builds a path string only
when it reports something. Nothing below a ``preserve_unknown`` node is checked.
"""

from __future__ import annotations

import binascii
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from corral.api.errors import BadRequest
from corral.api.patch.values import same
from corral.resources.schema import Schema
from corral.resources.schemas.dsl import QUANTITY_REF
from corral.resources.types import FieldCause

UNKNOWN = "FieldValueUnknown"
DUPLICATE = "FieldValueDuplicate"
TYPE_INVALID = "FieldValueTypeInvalid"

_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
)

_Path = tuple[Any, ...] | None
"""A path as a linked list (parent, step), formatted only when reported."""

_Struct = Schema | str
"""The Go struct a field belongs to: the nearest schema with a ``ref``,
named only when a type error is reported."""


def _format(path: _Path) -> str:
    steps: list[Any] = []
    while path is not None:
        path, step = path
        steps.append(step)
    out = ""
    for step in reversed(steps):
        if isinstance(step, int):
            out += f"[{step}]"
        elif isinstance(step, _Key):
            out += f"[{step.key}]"
        else:
            out += f".{step}" if out else step
    return out


@dataclass(frozen=True, slots=True)
class _Key:
    """A map key in a path; printed as ``labels[app]`` like Kubernetes' field paths."""

    key: str


@dataclass(slots=True)
class FieldReport:
    """What one walk found."""

    unknown: list[FieldCause] = field(default_factory=list)
    type_errors: list[FieldCause] = field(default_factory=list)
    _struct: list[str] = field(default_factory=list)
    """Go struct name of each type error, for the decoder-style message."""


def check_fields(obj: Any, schema: Schema) -> FieldReport:
    """Unknown fields and type errors in one walk (the write path wants both)."""
    report = FieldReport()
    _walk(obj, schema, None, "", report)
    return report


def check_changed_fields(obj: Any, old: Any, schema: Schema) -> FieldReport:
    """:func:`check_fields` for an update of the stored ``old``: a map entry
    equal (strictly, as JSON) to old's is skipped, as it was checked when
    stored; everything else is walked as check_fields walks it. A status
    write changes only status, and walking the whole pod for it was a sixth
    of the write."""
    report = FieldReport()
    _walk_changed(obj, old, schema, None, "", report)
    return report


def _walk_changed(value: Any, old: Any, schema: Schema, path: _Path, struct: _Struct, report: FieldReport) -> None:
    if not (isinstance(value, dict) and isinstance(old, dict) and schema.type == "object"
            and not schema.int_or_string and not schema.preserve_unknown):
        _walk(value, schema, path, struct, report)
        return
    struct = _struct_name(schema, struct)
    props = schema.properties
    extra = schema.additional_properties
    plain, plain_extra = _plain(schema)
    for key, sub in value.items():
        if type(sub) is plain.get(key, plain_extra) or key in old and same(old[key], sub):
            continue
        child = props.get(key)
        if child is not None:
            _walk_changed(sub, old.get(key), child, (path, key), struct, report)
        elif extra is not None:
            _walk_changed(sub, old.get(key), extra, (path, _Key(key)), struct, report)
        else:
            where = _format((path, key))
            report.unknown.append(FieldCause(where, f'unknown field "{where}"', UNKNOWN))


def unknown_fields(obj: dict[str, Any], schema: Schema) -> list[FieldCause]:
    return check_fields(obj, schema).unknown


def type_errors(obj: dict[str, Any], schema: Schema) -> list[FieldCause]:
    return check_fields(obj, schema).type_errors


def _struct_name(schema: Schema, parent: _Struct) -> _Struct:
    return schema if schema.ref else parent


def _struct_text(struct: _Struct) -> str:
    return struct.ref.rsplit(".", 1)[-1] if isinstance(struct, Schema) else struct


_PLAIN_TYPES = {"string": str, "boolean": bool, "integer": int}
_PLAIN_CACHE: dict[int, tuple[Schema, dict[str, type | None], type | None]] = {}
_PLAIN_CACHE_MAX = 4096


def _plain(schema: Schema) -> tuple[dict[str, type | None], type | None]:
    """For an object schema: the Python type of each property (and of its
    additional properties) whose value needs no more than that type to be
    fine (a string without a format, a boolean, an integer), so the walk
    tells such a field in one lookup rather than a call. Cached per schema
    (kept alive by the cache, so its id is not reused)."""
    hit = _PLAIN_CACHE.get(id(schema))
    if hit is not None:
        return hit[1], hit[2]
    props = {key: _plain_type(sub) for key, sub in schema.properties.items()}  # None: walk it
    extra = _plain_type(schema.additional_properties) if schema.additional_properties is not None else None
    if len(_PLAIN_CACHE) >= _PLAIN_CACHE_MAX:  # schemas of deleted CRDs must not pile up
        _PLAIN_CACHE.clear()
    _PLAIN_CACHE[id(schema)] = (schema, props, extra)
    return props, extra


def _plain_type(schema: Schema) -> type | None:
    if schema.int_or_string or schema.preserve_unknown or (schema.type == "string" and schema.format):
        return None
    return _PLAIN_TYPES.get(schema.type or "")


def _walk(value: Any, schema: Schema, path: _Path, struct: _Struct, report: FieldReport) -> None:
    if value is None or schema.preserve_unknown:
        return
    kind = schema.type
    if schema.int_or_string:
        _check_int_or_string(value, schema, path, struct, report)
    elif kind == "object":
        if not isinstance(value, dict):
            _type_error(value, schema, path, struct, report)
            return
        _walk_object(value, schema, path, _struct_name(schema, struct), report)
    elif kind == "array":
        if not isinstance(value, list):
            _type_error(value, schema, path, struct, report)
            return
        items = schema.items
        if items is not None:
            for i, item in enumerate(value):
                _walk(item, items, (path, i), struct, report)
    elif kind == "string":
        if not isinstance(value, str):
            _type_error(value, schema, path, struct, report)
        elif schema.format:
            _check_format(value, schema, path, struct, report)
    elif kind == "integer":
        if not isinstance(value, int) or isinstance(value, bool):
            _type_error(value, schema, path, struct, report)
    elif kind == "boolean":
        if not isinstance(value, bool):
            _type_error(value, schema, path, struct, report)
    elif kind == "number":
        if not isinstance(value, int | float) or isinstance(value, bool):
            _type_error(value, schema, path, struct, report)


def _walk_object(
    value: dict[str, Any], schema: Schema, path: _Path, struct: _Struct, report: FieldReport
) -> None:
    props = schema.properties
    extra = schema.additional_properties
    plain, plain_extra = _plain(schema)
    for key, sub in value.items():
        if type(sub) is plain.get(key, plain_extra):
            continue
        child = props.get(key)
        if child is not None:
            _walk(sub, child, (path, key), struct, report)
        elif extra is not None:
            _walk(sub, extra, (path, _Key(key)), struct, report)
        else:
            where = _format((path, key))
            report.unknown.append(FieldCause(where, f'unknown field "{where}"', UNKNOWN))


def _check_int_or_string(
    value: Any, schema: Schema, path: _Path, struct: _Struct, report: FieldReport
) -> None:
    if isinstance(value, bool):
        _type_error(value, schema, path, struct, report)
    elif isinstance(value, float) and schema.ref != QUANTITY_REF:
        _type_error(value, schema, path, struct, report)
    elif not isinstance(value, str | int | float):
        _type_error(value, schema, path, struct, report)


def _check_format(value: str, schema: Schema, path: _Path, struct: _Struct, report: FieldReport) -> None:
    if schema.format == "byte":
        try:
            binascii.a2b_base64(value.encode("ascii"), strict_mode=True)
        except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
            _report_type(report, path, struct, f"illegal base64 data: {exc}")
    elif schema.format == "date-time" and value and not _RFC3339.match(value):
        _report_type(
            report, path, struct,
            f'parsing time "{value}" as "2006-01-02T15:04:05Z07:00": not an RFC 3339 time',
        )


_JSON_NAMES = {bool: "bool", str: "string", int: "number", float: "number", dict: "object", list: "array"}


def _go_type(schema: Schema) -> str:
    """The Go type the Go decoder would name in its message."""
    if schema.int_or_string:
        return "resource.Quantity" if schema.ref == QUANTITY_REF else "intstr.IntOrString"
    if schema.type == "integer":
        return schema.format or "int"
    if schema.type == "boolean":
        return "bool"
    if schema.type == "number":
        return "float64"
    if schema.type == "string":
        return "[]uint8" if schema.format == "byte" else "string"
    if schema.type == "array":
        return "[]" + (_go_type(schema.items) if schema.items else "interface {}")
    if schema.additional_properties is not None:
        return "map[string]" + _go_type(schema.additional_properties)
    if schema.ref:
        parts = schema.ref.split(".")
        return f"{parts[-2]}.{parts[-1]}"
    return "struct"


def _type_error(value: Any, schema: Schema, path: _Path, struct: _Struct, report: FieldReport) -> None:
    json_name = _JSON_NAMES.get(type(value), "value")
    _report_type(report, path, struct, f"cannot unmarshal {json_name} into Go value of type {_go_type(schema)}")


def _report_type(report: FieldReport, path: _Path, struct: _Struct, message: str) -> None:
    where = _format(path)
    report.type_errors.append(FieldCause(where, message, TYPE_INVALID))
    report._struct.append(_struct_text(struct))


def _handled_as(kind: str, version: str) -> str:
    return f'{kind} in version "{version}" cannot be handled as a {kind}: ' if kind else ""


def strict_error(
    unknown: Iterable[FieldCause | str], *, kind: str = "", version: str = ""
) -> BadRequest:
    """The 400 Kubernetes answers a ``fieldValidation=Strict`` write with
    unknown or duplicate fields; ``kind``/``version`` add its usual prefix."""
    causes = [
        c if isinstance(c, FieldCause) else FieldCause(c, f'unknown field "{c}"', UNKNOWN)
        for c in unknown
    ]
    message = ", ".join(c.message for c in causes)
    return BadRequest(
        f"{_handled_as(kind, version)}strict decoding error: {message}", kind=kind, causes=causes
    )


def strict_warnings(unknown: Iterable[FieldCause]) -> list[str]:
    """The ``Warning`` header texts for ``fieldValidation=Warn``."""
    return [c.message for c in unknown]


def decode_error(report: FieldReport, *, kind: str = "", version: str = "") -> BadRequest:
    """The 400 for values of the wrong type, worded like the Go JSON decoder:
    ``json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32``."""
    first = report.type_errors[0]
    struct = report._struct[0]
    dotted = re.sub(r"\[[^\]]*\]", "", first.field)
    detail = first.message
    if detail.startswith("cannot unmarshal ") and " into Go value of type " in detail:
        what, go_type = detail.removeprefix("cannot unmarshal ").split(" into Go value of type ")
        detail = f"json: cannot unmarshal {what} into Go struct field {struct}.{dotted} of type {go_type}"
    return BadRequest(
        f"{_handled_as(kind, version)}{detail}", kind=kind, causes=list(report.type_errors)
    )


class _Pairs(dict[str, Any]):
    """A JSON object that remembers the keys it saw twice."""

    __slots__ = ("dups",)

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        super().__init__()
        self.dups: list[str] = []
        for key, value in pairs:
            if key in self:
                self.dups.append(key)
            self[key] = value


def duplicate_fields(raw: bytes | str) -> list[FieldCause]:
    """Keys repeated within one JSON object, as ``duplicate field "spec.replicas"``.

    The fast decoder keeps the last value silently; this parses again with the
    standard library, so call it only when strict validation was asked for.
    Raises ValueError for text that is not JSON.
    """
    doc = json.loads(raw, object_pairs_hook=_Pairs)
    found: list[FieldCause] = []
    stack: list[tuple[Any, _Path]] = [(doc, None)]
    while stack:
        node, path = stack.pop()
        if isinstance(node, _Pairs):
            for key in node.dups:
                where = _format((path, key))
                found.append(FieldCause(where, f'duplicate field "{where}"', DUPLICATE))
            stack.extend((v, (path, k)) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((v, (path, i)) for i, v in enumerate(node))
    return sorted(found, key=lambda c: c.field)
