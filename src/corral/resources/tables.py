"""Shared pieces of the Tables ``kubectl get`` prints.

kubectl prints the cells the server sends verbatim, so ages and selectors
are formatted here exactly as Kubernetes' server-side printers do.
Every cell is a str or an int so a Table serialises to JSON as-is.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from corral.resources.types import Column, Obj

UNKNOWN_AGE = "<unknown>"


def human_duration(seconds: float) -> str:
    """kubectl's HumanDuration: ``45s``, ``5m3s``, ``3h2m``, ``2d``, ``1y30d``."""
    secs = int(seconds)
    if secs < -1:
        return "<invalid>"
    if secs < 0:
        return "0s"
    if secs < 120:
        return f"{secs}s"
    minutes = secs // 60
    if minutes < 10:
        rest = secs % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = secs // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if hours < 24 * 8:
        rest = hours % 24
        return f"{days}d{rest}h" if rest else f"{days}d"
    if hours < 24 * 365 * 2:
        return f"{days}d"
    years = days // 365
    if hours < 24 * 365 * 8:
        rest = days % 365
        return f"{years}y{rest}d" if rest else f"{years}y"
    return f"{years}y"


def format_age(delta: timedelta) -> str:
    """An age (now minus a creationTimestamp) as kubectl prints it."""
    return human_duration(delta.total_seconds())


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 timestamp (``2024-01-02T03:04:05Z``, optionally with micros) or None."""
    if not isinstance(value, str) or not value:
        return None
    text = value[:-1] + "+00:00" if value.endswith("Z") else value
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def age_since(value: Any, now: datetime) -> str:
    """Age of a timestamp as kubectl prints it; ``<unknown>`` when unset or unparsable."""
    then = parse_time(value)
    if then is None:
        return UNKNOWN_AGE
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return human_duration((now - then).total_seconds())


def get_path(obj: Any, *path: str | int, default: Any = None) -> Any:
    """Walk nested dicts/lists; anything missing or of the wrong shape gives ``default``."""
    node = obj
    for step in path:
        if isinstance(step, int):
            if not isinstance(node, list) or not -len(node) <= step < len(node):
                return default
            node = node[step]
        elif type(node) is dict:  # noqa: E721 - the common case, without the ABC check
            node = node.get(step)
            if node is None:
                return default
        else:
            if not isinstance(node, Mapping) or step not in node:
                return default
            node = node[step]
    return default if node is None else node


def as_list(value: Any) -> list[Any]:
    """A list field, or [] when missing or malformed (the validator reports that)."""
    return value if isinstance(value, list) else []


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def dicts(value: Any) -> list[dict[str, Any]]:
    """The object items of a list field, skipping anything malformed."""
    return [item for item in as_list(value) if isinstance(item, dict)]


def as_int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def format_labels(labels: Any) -> str:
    """``k=v,k2=v2`` sorted by key, ``<none>`` when empty (a Service's selector)."""
    if not isinstance(labels, Mapping) or not labels:
        return "<none>"
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


def format_label_selector(selector: Any) -> str:
    """A LabelSelector in kubectl's string form: ``app=web,tier in (a,b),!gone``."""
    if not isinstance(selector, Mapping):
        return "<none>"
    parts: list[tuple[str, str]] = []
    for key, value in as_dict(selector.get("matchLabels")).items():
        parts.append((key, f"{key}={value}"))
    for expr in as_list(selector.get("matchExpressions")):
        if not isinstance(expr, Mapping):
            return "<error>"
        key, op = str(expr.get("key", "")), expr.get("operator")
        values = ",".join(sorted(str(v) for v in as_list(expr.get("values"))))
        if op == "In":
            parts.append((key, f"{key} in ({values})"))
        elif op == "NotIn":
            parts.append((key, f"{key} notin ({values})"))
        elif op == "Exists":
            parts.append((key, key))
        elif op == "DoesNotExist":
            parts.append((key, f"!{key}"))
        else:
            return "<error>"
    parts.sort(key=lambda p: p[0])
    return ",".join(text for _, text in parts) or "<none>"


def _name_cell(obj: Obj, now: datetime) -> str:
    return str(get_path(obj, "metadata", "name", default=""))


def _age_cell(obj: Obj, now: datetime) -> str:
    return age_since(get_path(obj, "metadata", "creationTimestamp"), now)


NAME_DESCRIPTION = (
    "Name must be unique within a namespace. Is required when creating resources, "
    "although some resources may allow a client to request the generation of an "
    "appropriate name automatically."
)
AGE_DESCRIPTION = (
    "CreationTimestamp is a timestamp representing the server time when this object "
    "was created."
)

NAME_COLUMN = Column("Name", "string", _name_cell, NAME_DESCRIPTION, format="name")
AGE_COLUMN = Column("Age", "string", _age_cell, AGE_DESCRIPTION)


def containers_cell(template_path: tuple[str, ...]) -> Column:
    """CONTAINERS (wide) of a workload whose pod template sits at ``template_path``."""

    def cell(obj: Obj, now: datetime) -> str:
        containers = get_path(obj, *template_path, "spec", "containers", default=[])
        return ",".join(str(get_path(c, "name", default="")) for c in as_list(containers))

    return Column("Containers", "string", cell, "Names of each container in the template.",
                  priority=1)


def images_cell(template_path: tuple[str, ...]) -> Column:
    def cell(obj: Obj, now: datetime) -> str:
        containers = get_path(obj, *template_path, "spec", "containers", default=[])
        return ",".join(str(get_path(c, "image", default="")) for c in as_list(containers))

    return Column("Images", "string", cell, "Images referenced by each container in the template.",
                  priority=1)


def selector_column(description: str = "Label selector for pods.") -> Column:
    def cell(obj: Obj, now: datetime) -> str:
        return format_label_selector(get_path(obj, "spec", "selector"))

    return Column("Selector", "string", cell, description, priority=1)


def render_row(columns: tuple[Column, ...], obj: Obj, now: datetime) -> list[Any]:
    """All cells of one row (the server sends wide columns too; kubectl hides them)."""
    return [column.cell(obj, now) for column in columns]
