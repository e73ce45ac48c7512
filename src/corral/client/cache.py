"""The informer's local store: objects by key, plus secondary indexes.

Objects in the cache are shared with every handler and reader; treat them as
read-only and copy before editing (client-go's rule too). Indexes are kept
up to date on every write, so ``by_index`` costs a dict lookup, which is what
lets a scheduler ask "pods on node n1" thousands of times a second.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
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
        # index name -> key -> the values the key is filed under: an update
        # compares against these instead of running the index function on
        # the old object again, and leaves the index alone when they hold
        # (a pod's namespace or owner does not change with its status).
        self._filed: dict[str, dict[str, tuple[str, ...]]] = {}
        # index name -> value -> its keys sorted, until they change: readers
        # ask for the same few values far more often than they change.
        self._sorted: dict[str, dict[str, list[str]]] = {}

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
        """The objects filed under ``value``, by key."""
        items = self._items
        return [items[k] for k in self.index_keys(name, value)]

    def index_keys(self, name: str, value: str) -> list[str]:
        """The keys filed under ``value``, sorted (a fresh list: the caller
        may keep or change it). None or one is the common answer, and skips
        the sorting; a longer list is sorted once until it changes."""
        index = self._indices.get(name)
        if index is None:
            raise KeyError(f"index {name!r} is not defined")
        keys = index.get(value)
        if not keys:
            return []
        if len(keys) == 1:
            return list(keys)
        memo = self._sorted[name]
        ordered = memo.get(value)
        if ordered is None:
            ordered = memo[value] = sorted(keys)
        return list(ordered)

    def add_index(self, name: str, func: IndexFunc) -> None:
        if name in self._index_funcs:
            raise ValueError(f"index {name!r} is already defined")
        self._index_funcs[name] = func
        self._indices[name] = {}
        self._filed[name] = {}
        self._sorted[name] = {}
        for key, obj in self._items.items():
            self._refile(name, key, obj)

    def put(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        """Store ``obj``; the object it replaced, if any."""
        key = object_key(obj)
        old = self._items.get(key)
        self._items[key] = obj
        for name in self._index_funcs:
            self._refile(name, key, obj)
        return old

    def remove(self, key: str) -> dict[str, Any] | None:
        old = self._items.pop(key, None)
        if old is not None:
            for name in self._index_funcs:
                values = self._filed[name].pop(key, ())
                if values:
                    self._unfile(name, key, values)
        return old

    def _refile(self, name: str, key: str, obj: dict[str, Any]) -> None:
        values = self._values(name, obj)
        filed = self._filed[name]
        before = filed.get(key, ())
        if values == before:
            return
        if before:
            self._unfile(name, key, [v for v in before if v not in values])
        if values:
            filed[key] = values
            index, memo = self._indices[name], self._sorted[name]
            for value in values:
                if value not in before:
                    index.setdefault(value, set()).add(key)
                    memo.pop(value, None)
        else:
            del filed[key]

    def _unfile(self, name: str, key: str, values: Iterable[str]) -> None:
        index, memo = self._indices[name], self._sorted[name]
        for value in values:
            keys = index.get(value)
            if keys is not None and key in keys:
                keys.discard(key)
                memo.pop(value, None)
                if not keys:
                    del index[value]

    def _values(self, name: str, obj: dict[str, Any]) -> tuple[str, ...]:
        """An index function that fails leaves the object out of that index
        instead of breaking the informer that feeds the cache."""
        try:
            return tuple(self._index_funcs[name](obj))
        except Exception:
            log.exception("index %r failed on %s", name, object_key(obj))
            return ()
