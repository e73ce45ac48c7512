"""Work shared by every watcher of the same events.

A thousand watchers of one resource receive the same stored versions; each
used to decode the stored bytes and encode the JSON line itself, which made
one event cost a thousand decodes and encodes. Here each version is decoded
once and each event line encoded once; the results are shared, so callers
must treat them as read-only.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import orjson

from corral.api.codec import decode
from corral.store.protocol import KeyValue

Obj = dict[str, Any]


class WatchFanout:
    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._objects: OrderedDict[tuple[str, int], Obj] = OrderedDict()
        self._lines: OrderedDict[tuple[str, str, int], bytes] = OrderedDict()

    def decode(self, kv: KeyValue) -> Obj:
        key = (kv.key, kv.mod_revision)
        obj = self._objects.get(key)
        if obj is None:
            obj = decode(kv)
            self._objects[key] = obj
            if len(self._objects) > self._size:
                self._objects.popitem(last=False)
        return obj

    def line(self, event_type: str, obj: Obj, revision: int) -> bytes:
        """The JSON line of a plain (non-Table) event."""
        meta = obj.get("metadata") or {}
        key = (event_type, f"{meta.get('namespace', '')}/{meta.get('name', '')}", revision)
        line = self._lines.get(key)
        if line is None:
            line = orjson.dumps({"type": event_type, "object": obj}) + b"\n"
            self._lines[key] = line
            if len(self._lines) > self._size:
                self._lines.popitem(last=False)
        return line
