"""The head of an object a server answered with, read without decoding all of it.

A controller that creates pods by the thousand with ``generateName`` needs
only the name the server chose; decoding each whole answer (a pod's
managedFields, spec and status) cost it as much as the create's own
bookkeeping.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from corral.client import errors

# How API servers begin an object (corral's and Kubernetes' own encoders):
# the head is then read from the bytes up to the end of metadata alone. No
# JSON string holds an unescaped quote, so no value can fake the prefix.
_HEAD = re.compile(rb'\s*\{"apiVersion":"([^"\\]*)","kind":"([^"\\]*)","metadata":')
_NAME_FIRST = re.compile(rb'\{"name":"([^"\\]*)"')  # metadata as Kubernetes orders it
_AFTER_METADATA = b'},"spec":'


def object_head(raw: bytes, what: str = "response") -> dict[str, Any]:
    """``{"apiVersion", "kind", "metadata": {"name"}}`` of the object ``raw``
    encodes. When the object begins the usual way, nothing (metadata.name
    first, as Kubernetes orders it) or only its metadata is decoded; else
    all of it."""
    found = _HEAD.match(raw)
    if found is not None:
        api_version, kind = (part.decode() for part in found.groups())
        start = found.end()
        named = _NAME_FIRST.match(raw, start)
        if named is not None:
            return _head(api_version, kind, {"name": named.group(1).decode()})
        end = raw.find(_AFTER_METADATA, start)
        if end >= 0:
            try:
                # Decodes only if the cut is exactly metadata's object: a
                # cut inside it would leave a brace open.
                meta = orjson.loads(raw[start:end + 1])
            except orjson.JSONDecodeError:
                meta = None
            if isinstance(meta, dict):
                return _head(api_version, kind, meta)
    try:
        data = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError as exc:
        raise errors.ApiError(0, "InvalidResponse", f"{what}: not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise errors.ApiError(0, "InvalidResponse", f"{what}: expected an object")
    return _head(data.get("apiVersion"), data.get("kind"), data.get("metadata"))


def _head(api_version: Any, kind: Any, meta: Any) -> dict[str, Any]:
    head: dict[str, Any] = {"apiVersion": api_version, "kind": kind, "metadata": {}}
    if isinstance(meta, dict) and "name" in meta:
        head["metadata"]["name"] = meta["name"]
    return head


__all__ = ["object_head"]
