"""The informer's local store: objects by key, plus secondary indexes.

Objects in the cache are shared with every handler and reader; treat them as
read-only and copy before editing (client-go's rule too). Indexes are kept
up to date on every write, so ``by_index`` costs a dict lookup, which is what
lets a scheduler ask "pods on node n1" thousands of times a second.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

IndexFunc = Callable[[dict[str, Any]], list[str]]


def object_key(obj: dict[str, Any]) -> str:
    """``namespace/name``, or ``name`` for a cluster-scoped object."""
    meta = obj.get("metadata") or {}
    name = meta.get("name") or ""
    ns = meta.get("namespace")
    return f"{ns}/{name}" if ns else name


def split_key(key: str) -> tuple[str | None, str]:
    """``(namespace, name)`` from a key made by :func:`object_key`."""
    ns, sep, name = key.partition("/")
    return (ns, name) if sep else (None, key)


class Cache:
    def __init__(self) -> None:
        self._items: dict[str, dict[str, Any]] = {}
        self._index_funcs: dict[str, IndexFunc] = {}
        # index name -> indexed value -> keys
        self._indices: dict[str, dict[str, set[str]]] = {}

    def get(self, key: str) -> dict[str, Any] | None:
        return self._items.get(key)

    def list(self) -> list[dict[str, Any]]:
        return list(self._items.values())

    def keys(self) -> list[str]:
        return list(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def by_index(self, name: str, value: str) -> list[dict[str, Any]]:
        return [self._items[k] for k in self.index_keys(name, value)]

    def index_keys(self, name: str, value: str) -> list[str]:
        if name not in self._index_funcs:
            raise KeyError(f"index {name!r} is not defined")
        return sorted(self._indices[name].get(value, ()))

    def add_index(self, name: str, func: IndexFunc) -> None:
        if name in self._index_funcs:
            raise ValueError(f"index {name!r} is already defined")
        self._index_funcs[name] = func
        self._indices[name] = {}
        for key, obj in self._items.items():
            self._index_add(name, key, obj)

    def put(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        """Store ``obj``; the object it replaced, if any."""
        key = object_key(obj)
        old = self._items.get(key)
        if old is not None:
            self._unindex(key, old)
        self._items[key] = obj
        for name in self._index_funcs:
            self._index_add(name, key, obj)
        return old

    def remove(self, key: str) -> dict[str, Any] | None:
        old = self._items.pop(key, None)
        if old is not None:
            self._unindex(key, old)
        return old

    def _index_add(self, name: str, key: str, obj: dict[str, Any]) -> None:
        index = self._indices[name]
        for value in self._values(name, obj):
            index.setdefault(value, set()).add(key)

    def _unindex(self, key: str, obj: dict[str, Any]) -> None:
        for name in self._index_funcs:
            index = self._indices[name]
            for value in self._values(name, obj):
                keys = index.get(value)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del index[value]

    def _values(self, name: str, obj: dict[str, Any]) -> list[str]:
        """An index function that fails leaves the object out of that index
        instead of breaking the informer that feeds the cache."""
        try:
            return list(self._index_funcs[name](obj))
        except Exception:
            log.exception("index %r failed on %s", name, object_key(obj))
            return []
