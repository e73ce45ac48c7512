"""The Store protocol: etcd-like semantics that every backend must keep.

The API server stores each object as opaque bytes under a key such as
``/registry/pods/default/web-1``. Every write gets the next value of one
global revision; the revision at which a key was last written is the object's
``resourceVersion``. Writes are compare-and-swap on that revision, so two
writers never silently overwrite each other. Watches replay history after a
revision from a bounded window; a revision older than the window raises
:class:`CompactedError`, which the API turns into ``410 Gone`` so informers
re-list.

The protocol is deliberately narrow (no multi-key transactions, no leases):
an etcd backend implements it with one transaction per call and passes the
same conformance suite.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: str
    value: bytes
    create_revision: int
    mod_revision: int


class EventType(enum.Enum):
    PUT = "PUT"
    DELETE = "DELETE"


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One change. For DELETE, ``kv.value`` is the last value the key had and
    ``kv.mod_revision`` is the revision of the deletion itself."""

    type: EventType
    kv: KeyValue
    prev: KeyValue | None = None


@dataclass(frozen=True, slots=True)
class ListResult:
    items: list[KeyValue]
    revision: int
    """The revision the list was read at (use it to continue, or to watch from)."""
    more: bool
    """True when ``limit`` cut the result; continue with ``start_after=items[-1].key``."""


class StoreError(Exception):
    """Base of everything a backend raises."""


class KeyExistsError(StoreError):
    def __init__(self, key: str) -> None:
        super().__init__(f"key {key!r} already exists")
        self.key = key


class KeyNotFoundError(StoreError):
    def __init__(self, key: str) -> None:
        super().__init__(f"key {key!r} not found")
        self.key = key


class ConflictError(StoreError):
    """The key's revision is not the expected one; ``current`` is what is there now."""

    def __init__(self, key: str, expected: int, current: KeyValue | None) -> None:
        got = current.mod_revision if current else None
        super().__init__(f"key {key!r}: expected revision {expected}, found {got}")
        self.key = key
        self.expected = expected
        self.current = current


class CompactedError(StoreError):
    """The requested revision is older than the history the store keeps."""

    def __init__(self, requested: int, oldest: int) -> None:
        super().__init__(
            f"revision {requested} has been compacted; the oldest available is {oldest}"
        )
        self.requested = requested
        self.oldest = oldest


class FutureRevisionError(StoreError):
    """The requested revision is newer than anything written yet."""

    def __init__(self, requested: int, current: int) -> None:
        super().__init__(f"revision {requested} is in the future; current is {current}")
        self.requested = requested
        self.current = current


class StoreUnavailableError(StoreError):
    """The backend cannot serve the request now (closed, disk error, no quorum)."""


class Watch(Protocol):
    """An async iterator of events; ``close()`` ends it. If the watcher falls
    too far behind, iteration raises :class:`CompactedError` (the client must
    re-list), never silently drops events."""

    def __aiter__(self) -> AsyncIterator[WatchEvent]: ...

    async def close(self) -> None: ...


@runtime_checkable
class Store(Protocol):
    async def start(self) -> None:
        """Open files / connections. Called once before any other call."""

    async def close(self) -> None:
        """Flush, end every watch, release resources."""

    async def current_revision(self) -> int: ...

    async def get(self, key: str) -> KeyValue | None: ...

    async def create(self, key: str, value: bytes) -> KeyValue:
        """Raises KeyExistsError. Returns the stored KeyValue (acknowledged = durable)."""

    async def update(self, key: str, value: bytes, expected_revision: int) -> KeyValue:
        """Compare-and-swap on mod_revision. ``expected_revision == 0`` means
        unconditional. Raises KeyNotFoundError or ConflictError."""

    async def delete(self, key: str, expected_revision: int = 0) -> KeyValue:
        """Returns the deleted KeyValue with ``mod_revision`` = the deletion's
        revision. Raises KeyNotFoundError or ConflictError."""

    async def list(
        self,
        prefix: str,
        *,
        revision: int = 0,
        start_after: str = "",
        limit: int = 0,
    ) -> ListResult:
        """Keys starting with ``prefix`` in key order, as they were at
        ``revision`` (0 = now). ``limit`` 0 = no limit. Raises CompactedError
        for a revision older than history, FutureRevisionError for a newer one."""

    async def count(self, prefix: str) -> int: ...

    def watch(self, prefix: str, after_revision: int) -> Watch:
        """Every event on keys under ``prefix`` with revision > after_revision,
        in revision order, then live events. CompactedError is raised from
        iteration when after_revision is older than the kept history."""

    async def compact(self, revision: int) -> None:
        """Forget history at or below ``revision`` (current values stay)."""
