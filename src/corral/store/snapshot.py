"""Backup, restore and migration of a store, for every backend.

A snapshot is logical, not a copy of the backend's files: every key and
value as they were at one revision (a list pinned to that revision, page by
page, so a live store yields a consistent cut while writes go on). That
makes one format serve SQLite and etcd alike, and lets a one-machine SQLite
cluster move to etcd (:func:`copy_store`).

What is not kept: revisions. Restored keys get the target's next revisions
in key order, so resourceVersions renumber; clients must re-list (informers
do so when their watch fails). Restore refuses a target that is not empty.

File: gzip'd JSON lines, a header ``{"format", "revision", "source",
"created"}``, one ``{"k", "v"}`` per key (value base64), and a trailer
``{"end": true, "count", "sha256"}`` that detects a truncated or altered
file before anything is written.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import gzip
import hashlib
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

from corral.store.protocol import KeyValue, Store, StoreError

FORMAT = "corral-snapshot/1"
PAGE = 500
WRITE_CONCURRENCY = 32


class SnapshotError(ValueError):
    """A snapshot file that cannot be used, or a target that must not be written."""


@dataclass(frozen=True)
class SnapshotInfo:
    revision: int
    count: int
    source: str = ""


async def pages_at_revision(store: Store) -> AsyncIterator[tuple[int, list[KeyValue]]]:
    """``(revision, page)`` over every key, all pages read at one revision."""
    first = await store.list("", limit=PAGE)
    revision = first.revision
    yield revision, first.items
    page = first
    while page.more:
        page = await store.list("", revision=revision, start_after=page.items[-1].key, limit=PAGE)
        yield revision, page.items


async def write_snapshot(store: Store, path: Path, source: str = "") -> SnapshotInfo:
    """Write the snapshot to ``path`` atomically (a temporary file renamed into place)."""
    tmp = path.with_name(path.name + ".partial")
    digest = hashlib.sha256()
    count = 0
    revision = 0
    try:
        with gzip.open(tmp, "wb") as out:
            async for revision, items in pages_at_revision(store):
                if count == 0 and not out.tell():
                    out.write(_line({"format": FORMAT, "revision": revision, "source": source,
                                     "created": dt.datetime.now(dt.UTC).isoformat()}))
                for kv in items:
                    digest.update(kv.key.encode() + b"\0" + kv.value)
                    out.write(_line({"k": kv.key, "v": base64.b64encode(kv.value).decode()}))
                    count += 1
            out.write(_line({"end": True, "count": count, "sha256": digest.hexdigest()}))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return SnapshotInfo(revision, count, source)


def _line(obj: dict[str, object]) -> bytes:
    return orjson.dumps(obj) + b"\n"


def read_snapshot(path: Path) -> tuple[SnapshotInfo, list[tuple[str, bytes]]]:
    """The header and every entry, after checking the trailer and checksum."""
    try:
        with gzip.open(path, "rb") as f:
            lines = f.read().splitlines()
    except (OSError, EOFError) as exc:
        raise SnapshotError(f"snapshot {path}: cannot read it: {exc}") from exc
    if len(lines) < 2:
        raise SnapshotError(f"snapshot {path}: empty or truncated")
    try:
        header = orjson.loads(lines[0])
        trailer = orjson.loads(lines[-1])
        entries = list(_entries(lines[1:-1]))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise SnapshotError(f"snapshot {path}: malformed: {exc}") from exc
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise SnapshotError(f"snapshot {path}: format: expected {FORMAT!r}")
    if not isinstance(trailer, dict) or not trailer.get("end"):
        raise SnapshotError(f"snapshot {path}: truncated (no trailer)")
    digest = hashlib.sha256()
    for key, value in entries:
        digest.update(key.encode() + b"\0" + value)
    if trailer.get("count") != len(entries) or trailer.get("sha256") != digest.hexdigest():
        raise SnapshotError(f"snapshot {path}: checksum mismatch (the file is damaged)")
    return SnapshotInfo(int(header.get("revision") or 0), len(entries),
                        str(header.get("source") or "")), entries


def _entries(lines: list[bytes]) -> Iterator[tuple[str, bytes]]:
    for raw in lines:
        item = orjson.loads(raw)
        yield item["k"], base64.b64decode(item["v"], validate=True)


async def _ensure_empty(store: Store, what: str) -> None:
    existing = await store.count("")
    if existing:
        raise SnapshotError(f"{what}: the target store already holds {existing} keys; "
                            "restore only into an empty store")


async def _create_all(store: Store, entries: AsyncIterator[list[tuple[str, bytes]]]) -> int:
    count = 0
    async for batch in entries:
        for i in range(0, len(batch), WRITE_CONCURRENCY):
            chunk = batch[i:i + WRITE_CONCURRENCY]
            await asyncio.gather(*(store.create(key, value) for key, value in chunk))
            count += len(chunk)
    return count


async def restore_snapshot(store: Store, path: Path) -> SnapshotInfo:
    """Write every key of the snapshot into the (empty) ``store``."""
    info, entries = read_snapshot(path)
    await _ensure_empty(store, f"restore {path}")

    async def batches() -> AsyncIterator[list[tuple[str, bytes]]]:
        for i in range(0, len(entries), PAGE):
            yield entries[i:i + PAGE]

    count = await _create_all(store, batches())
    return SnapshotInfo(info.revision, count, info.source)


async def copy_store(source: Store, target: Store) -> SnapshotInfo:
    """Migration: every key of ``source`` at one revision into the empty ``target``."""
    await _ensure_empty(target, "migrate")
    revision = 0

    async def batches() -> AsyncIterator[list[tuple[str, bytes]]]:
        nonlocal revision
        async for at, items in pages_at_revision(source):
            revision = at
            yield [(kv.key, kv.value) for kv in items]

    count = await _create_all(target, batches())
    return SnapshotInfo(revision, count)


__all__ = [
    "SnapshotError", "SnapshotInfo", "StoreError", "copy_store", "read_snapshot",
    "restore_snapshot", "write_snapshot",
]
