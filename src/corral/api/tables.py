"""``meta.k8s.io/v1`` Table responses for ``kubectl get``.

kubectl prints the cells exactly as sent, so ages and statuses are formatted
here on the server; each row carries the object's metadata (or the whole
object) because ``-A`` and ``--show-labels`` read it from there.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from corral.clock import parse_timestamp
from corral.resources.types import Column, ResourceType

Obj = dict[str, Any]


def wants_table(accept: str) -> bool:
    for part in accept.split(","):
        params = {p.split("=", 1)[0].strip(): p.split("=", 1)[-1].strip() for p in part.split(";")[1:]}
        if params.get("as") == "Table" and params.get("g") == "meta.k8s.io":
            return True
    return False


def _age(obj: Obj, now: datetime) -> str:
    from corral.resources.tables import format_age

    ts = (obj.get("metadata") or {}).get("creationTimestamp")
    return format_age(now - parse_timestamp(ts)) if ts else "<unknown>"


DEFAULT_COLUMNS = (
    Column("Name", "string", lambda o, now: o["metadata"]["name"], "Name must be unique within a namespace.", "name"),
    Column("Age", "string", _age, "CreationTimestamp is the time the object was created."),
)


def _columns(rt: ResourceType) -> tuple[Column, ...]:
    return rt.columns or DEFAULT_COLUMNS


def column_definitions(rt: ResourceType) -> list[dict[str, Any]]:
    return [
        {"name": c.name, "type": c.type, "format": c.format, "description": c.description,
         "priority": c.priority}
        for c in _columns(rt)
    ]


def _row_object(obj: Obj, include: str) -> Obj | None:
    if include == "None":
        return None
    if include == "Object":
        return obj
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata", {})}


def row(rt: ResourceType, obj: Obj, now: datetime, include: str = "Metadata") -> dict[str, Any]:
    cells = []
    for col in _columns(rt):
        try:
            cells.append(col.cell(obj, now))
        except (KeyError, TypeError, ValueError, IndexError):
            cells.append("<unknown>")  # a half-written object must not break `kubectl get`
    out: dict[str, Any] = {"cells": cells}
    ro = _row_object(obj, include)
    if ro is not None:
        out["object"] = ro
    return out


def table(
    rt: ResourceType,
    objects: list[Obj],
    now: datetime,
    *,
    resource_version: str = "",
    continue_token: str = "",
    include: str = "Metadata",
    headers: bool = True,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"resourceVersion": resource_version}
    if continue_token:
        meta["continue"] = continue_token
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": column_definitions(rt) if headers else [],
        "rows": [row(rt, o, now, include) for o in objects],
    }
