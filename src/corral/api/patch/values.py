"""JSON-value helpers shared by the patch kinds.

Patches work on plain parsed JSON (dict, list, str, int, float, bool, None).
Python's ``==`` says ``True == 1`` and ``1 == 1.0``; a patch that turns
``replicas: 1`` into ``replicas: true`` is a change, so equality here is
strict about types.
"""

from __future__ import annotations

from typing import Any

import orjson

MISSING: Any = object()
"""Marks an absent key, distinct from an explicit JSON null."""


def deep_copy(value: Any) -> Any:
    """A copy sharing nothing with ``value``, so callers may mutate either."""
    if isinstance(value, dict):
        return {k: deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [deep_copy(v) for v in value]
    return value


def same(a: Any, b: Any) -> bool:
    if isinstance(a, dict):
        return (
            isinstance(b, dict)
            and a.keys() == b.keys()
            and all(same(v, b[k]) for k, v in a.items())
        )
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return type(a) is type(b) and a == b


def compact_json(value: Any) -> str:
    """Kubernetes' compact JSON with sorted keys, as used in FieldsV1 keys."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
