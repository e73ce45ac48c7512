"""Objects in and out of the store.

The store holds JSON without ``metadata.resourceVersion``: the version is
the revision the store reports, set on the way out, so it can never
disagree with the store.
"""

from __future__ import annotations

from typing import Any

import orjson

from corral.store.protocol import KeyValue


def encode(obj: dict[str, Any]) -> bytes:
    meta = obj.get("metadata") or {}
    rv = meta.pop("resourceVersion", None)
    try:
        return orjson.dumps(obj)
    finally:
        if rv is not None:
            meta["resourceVersion"] = rv


def decode(kv: KeyValue) -> dict[str, Any]:
    obj: dict[str, Any] = orjson.loads(kv.value)
    obj.setdefault("metadata", {})["resourceVersion"] = str(kv.mod_revision)
    return obj


def deep_copy(obj: Any) -> Any:
    """JSON-shaped deep copy; a round trip through orjson beats copy.deepcopy
    several times over for the dict/list/str trees objects are."""
    return orjson.loads(orjson.dumps(obj))
