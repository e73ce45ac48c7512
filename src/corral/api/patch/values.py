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
    """A copy sharing nothing with ``value``, so callers may mutate either.
    A JSON round trip in C is several times faster than walking in Python;
    values JSON cannot hold (sentinels, huge ints) take the slow path."""
    try:
        return orjson.loads(orjson.dumps(value))
    except TypeError:
        return _deep_copy(value)


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def same(a: Any, b: Any) -> bool:
    """Equal as JSON values. Python's ``==`` settles most cases in C: unequal
    there is unequal here too, and an identical encoding is equal; only
    bool/number mixes and differently ordered maps need the strict walk."""
    if a is b:
        return True
    try:
        if a != b:
            return False
        if orjson.dumps(a) == orjson.dumps(b):
            return True
    except TypeError:
        pass
    return _same(a, b)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, dict):
        return (
            isinstance(b, dict)
            and a.keys() == b.keys()
            and all(_same(v, b[k]) for k, v in a.items())
        )
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return type(a) is type(b) and a == b


def compact_json(value: Any) -> str:
    """Kubernetes' compact JSON with sorted keys, as used in FieldsV1 keys."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
