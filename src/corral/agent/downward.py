"""The downward API: a pod's own fields and resources, for env and volumes.

``resourceFieldRef`` follows Kubernetes: the container's limit (or request),
falling back to the node's allocatable when no limit is set, divided by
``divisor`` and rounded up (so ``limits.cpu`` of 250m with the default
divisor 1 is "1").
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from corral.resources.quantity import QuantityError, parse_quantity

RESOURCES = (
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
)


class DownwardError(ValueError):
    """A reference the agent cannot resolve; the message names the field."""


def resource_value(
    ref: dict[str, Any],
    container: dict[str, Any],
    allocatable: dict[str, str],
    field_path: str,
) -> str:
    resource = str(ref.get("resource") or "")
    if resource not in RESOURCES:
        raise DownwardError(
            f"{field_path}.resource: Unsupported value: {resource!r}: supported values: "
            + ", ".join(f'"{r}"' for r in RESOURCES)
        )
    kind, _, name = resource.partition(".")
    raw = ((container.get("resources") or {}).get(kind) or {}).get(name)
    if raw is None and kind == "requests":
        raw = ((container.get("resources") or {}).get("limits") or {}).get(name)
    if raw is None and kind == "limits":
        raw = allocatable.get(name)
    if raw is None:
        return "0"
    try:
        value = parse_quantity(raw)
        divisor = parse_quantity(ref.get("divisor") or "1")
    except QuantityError as exc:
        raise DownwardError(f"{field_path}: {exc}") from exc
    if divisor <= 0:
        raise DownwardError(f"{field_path}.divisor: Invalid value: must be positive")
    return str(math.ceil(Decimal(value) / Decimal(divisor)))


def quote_map(values: dict[str, Any]) -> str:
    """Labels/annotations as a downward-API file: ``key="value"`` lines,
    sorted, values quoted as Go's %q does."""
    lines = []
    for key in sorted(values):
        text = str(values[key])
        escaped = (
            text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
        )
        lines.append(f'{key}="{escaped}"')
    return "\n".join(lines)
