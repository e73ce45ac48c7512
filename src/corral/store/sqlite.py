"""The embedded store: SQLite in WAL mode behind one group-committing writer.

Durability costs one fsync per commit, so writes are not committed one by
one. Callers enqueue operations; a dedicated writer thread takes everything
queued, applies each operation (with its own compare-and-swap check) in one
transaction, commits once, and only then hands the batch back to the event
loop, which notifies watchers and resolves each caller's future. A failed
check fails only its own operation; a SQLite error fails the whole batch,
which was rolled back, so nothing partial is ever acknowledged.

The loop never waits for an fsync: single-key reads run inline on their own
connection (WAL readers never block on the writer), longer reads run in a
small reader pool.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import fcntl
import functools
import os
import queue
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from corral.clock import Clock, RealClock
from corral.store import sqlite_log
from corral.store.arguments import check_key, check_revision, check_text, check_value
from corral.store.checkpoint import Checkpointer
from corral.store.protocol import (
    CompactedError,
    FutureRevisionError,
    KeyValue,
    ListResult,
    StoreError,
    StoreUnavailableError,
    WatchEvent,
)
from corral.store.watch import EventRing, StoreWatch, WatchHub

T = TypeVar("T")

_REPLAY_PAGE = 500
_COMPACT_STEP = 1024
_STOP = object()


@dataclass(slots=True)
class _Op:
    kind: str  # "create" | "update" | "delete" | "compact"
    key: str
    value: bytes
    expected: int
    future: asyncio.Future[Any] = field(repr=False)


@dataclass(slots=True)
class WriterStats:
    """What the writer has done; lets benchmarks and metrics see batching."""

    batches: int = 0
    operations: int = 0
    largest_batch: int = 0
    commit_seconds: float = 0.0


class SqliteStore:
    """A :class:`corral.store.protocol.Store` in one SQLite file.

    ``history_limit`` revisions of history are kept for list-at-revision and
    watch replay (older ones are compacted automatically, a bounded step per
    commit); ``ring_size`` of them are also kept in memory so that watches
    resuming from a recent revision never touch the disk; ``watch_buffer`` is
    how many undelivered events a watcher may owe before it is ended with
    CompactedError; ``max_batch`` bounds one group commit.
    """

    def __init__(
        self,
        path: str,
        *,
        history_limit: int = 100_000,
        clock: Clock | None = None,
        ring_size: int = 10_000,
        watch_buffer: int = 4096,
        max_batch: int = 512,
    ) -> None:
        if not isinstance(path, str) or not path or path == ":memory:":
            raise ValueError(f"path: a database file path is required, got {path!r}")
        for name, number in (
            ("history_limit", history_limit),
            ("ring_size", ring_size),
            ("watch_buffer", watch_buffer),
            ("max_batch", max_batch),
        ):
            if not isinstance(number, int) or number < 1:
                raise ValueError(f"{name}: must be a positive integer, got {number!r}")
        self.path = path
        self._history_limit = history_limit
        self._clock = clock or RealClock()
        self._ring_size = ring_size
        self._watch_buffer = watch_buffer
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._state = "new"  # new → open → closed
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock_fd: int | None = None
        self._conn: sqlite3.Connection | None = None
        self._readers: concurrent.futures.ThreadPoolExecutor | None = None
        self._reader_conns: list[sqlite3.Connection] = []
        self._local = threading.local()
        self._writer_done: asyncio.Future[None] | None = None
        # Written by the writer thread, read anywhere: plain int stores are atomic.
        self._committed_revision = 0
        self._compact_revision = 0
        self._checkpointer: Checkpointer | None = None
        self._hub: WatchHub | None = None
        self._ring: EventRing | None = None
        self.stats = WriterStats()

    # -- lifecycle ----------------------------------------------------------

    async def start(self) -> None:
        if self._state != "new":
            raise StoreUnavailableError(f"sqlite store {self.path}: start() called twice")
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._lock_fd = self._take_lock()
        ready: asyncio.Future[sqlite_log.LogWriter] = loop.create_future()
        self._writer_done = loop.create_future()
        thread = threading.Thread(
            target=self._writer_main, args=(ready,), name="corral-store-writer", daemon=True
        )
        thread.start()
        try:
            writer = await ready
            self._conn = sqlite_log.connect(self.path, readonly=True)
        except BaseException:
            self._queue.put(_STOP)
            self._release_lock()
            raise
        self._committed_revision = writer.revision
        self._compact_revision = writer.compact_revision
        self._checkpointer = Checkpointer(self.path)
        self._checkpointer.start()
        self._hub = WatchHub(writer.revision, self._watch_buffer, loop.create_future)
        self._ring = EventRing(self._ring_size, writer.revision)
        self._readers = concurrent.futures.ThreadPoolExecutor(
            max_workers=2, thread_name_prefix="corral-store-read"
        )
        self._state = "open"

    def _take_lock(self) -> int:
        """One process, one store per file: the writer keeps the revision in
        memory, so a second writer would hand out duplicate revisions."""
        lock_path = self.path + ".lock"
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StoreUnavailableError(f"sqlite store {self.path}: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            raise StoreUnavailableError(
                f"sqlite store {self.path} is already open (lock {lock_path} is held)"
            ) from exc
        return fd

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    async def close(self) -> None:
        """End every watch, let queued writes commit, then release the files."""
        if self._state != "open":
            self._state = "closed"
            return
        self._state = "closed"
        assert self._hub is not None and self._writer_done is not None
        self._hub.close_all()
        self._queue.put(_STOP)
        await self._writer_done
        if self._checkpointer is not None:
            await asyncio.to_thread(self._checkpointer.stop)
        readers, self._readers = self._readers, None
        if readers is not None:
            await asyncio.to_thread(readers.shutdown, wait=True)
        for conn in [*self._reader_conns, self._conn]:
            if conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
        self._reader_conns.clear()
        self._conn = None
        self._release_lock()

    def _check_open(self) -> None:
        if self._state != "open":
            raise StoreUnavailableError(f"sqlite store {self.path} is {self._state}")

    def _unavailable(self, exc: BaseException) -> StoreUnavailableError:
        return StoreUnavailableError(f"sqlite store {self.path}: {exc}")

    # -- the writer thread --------------------------------------------------

    def _writer_main(self, ready: asyncio.Future[sqlite_log.LogWriter]) -> None:
        loop = self._loop
        assert loop is not None
        try:
            conn = sqlite_log.connect(self.path)
            writer = sqlite_log.LogWriter(conn)
        except sqlite3.Error as exc:
            err = self._unavailable(exc)
            err.__cause__ = exc
            loop.call_soon_threadsafe(_settle, ready, err)
            loop.call_soon_threadsafe(_settle, self._writer_done, None)
            return
        loop.call_soon_threadsafe(_settle, ready, writer)
        try:
            while True:
                batch = [self._queue.get()]
                while batch[-1] is not _STOP and len(batch) < self._max_batch:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                ops = [op for op in batch if op is not _STOP]
                if ops:
                    self._commit_batch(writer, ops)
                if batch[-1] is _STOP:
                    break
        finally:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, self._writer_done, None)

    def _commit_batch(self, writer: sqlite_log.LogWriter, ops: list[_Op]) -> None:
        started = self._clock.monotonic()
        saved = (writer.revision, writer.compact_revision)
        results: list[Any] = []
        try:
            writer.conn.execute("BEGIN IMMEDIATE")
            for op in ops:
                results.append(self._apply(writer, op))
            if writer.revision - writer.compact_revision > self._history_limit:
                self._compact_revision = writer.compact_step(
                    writer.revision - self._history_limit, _COMPACT_STEP
                )
            writer.conn.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                writer.conn.execute("ROLLBACK")
            writer.revision, writer.compact_revision = saved
            self._compact_revision = saved[1]
            results = []
            for _ in ops:
                err = self._unavailable(exc)
                err.__cause__ = exc
                results.append(err)
        self._committed_revision = writer.revision
        if self._checkpointer is not None:
            self._checkpointer.wrote()
        self.stats.batches += 1
        self.stats.operations += len(ops)
        self.stats.largest_batch = max(self.stats.largest_batch, len(ops))
        self.stats.commit_seconds += self._clock.monotonic() - started
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # loop already gone: nobody to tell
            self._loop.call_soon_threadsafe(self._finish_batch, ops, results)

    def _apply(self, writer: sqlite_log.LogWriter, op: _Op) -> Any:
        try:
            if op.kind == "create":
                return writer.create(op.key, op.value)
            if op.kind == "update":
                return writer.update(op.key, op.value, op.expected)
            if op.kind == "delete":
                return writer.delete(op.key, op.expected)
            # Published before COMMIT so a reader that could already see the
            # deleted rows gone also sees the new compaction floor.
            target = min(op.expected, writer.revision)
            self._compact_revision = max(
                writer.compact_revision, min(writer.compact_revision + _COMPACT_STEP, target)
            )
            return writer.compact_step(target, _COMPACT_STEP)
        except StoreError as exc:
            return exc

    def _finish_batch(self, ops: list[_Op], results: list[Any]) -> None:
        """On the loop: publish, then acknowledge, so that a caller who saw its
        write return also sees it in current_revision() and in new watches."""
        events = [r for r in results if isinstance(r, WatchEvent)]
        if events and self._hub is not None and self._ring is not None:
            self._ring.extend(events)
            self._hub.publish(events)
        for op, result in zip(ops, results, strict=True):
            if op.future.done():
                continue
            if isinstance(result, BaseException):
                op.future.set_exception(result)
            elif isinstance(result, WatchEvent):
                op.future.set_result(result.kv)
            else:
                op.future.set_result(result)

    async def _submit(self, kind: str, key: str, value: bytes, expected: int) -> Any:
        self._check_open()
        assert self._loop is not None
        future: asyncio.Future[Any] = self._loop.create_future()
        self._queue.put(_Op(kind, key, value, expected, future))
        return await future

    # -- writes -------------------------------------------------------------

    async def create(self, key: str, value: bytes) -> KeyValue:
        return await self._submit("create", check_key(key), check_value(value), 0)

    async def update(self, key: str, value: bytes, expected_revision: int) -> KeyValue:
        expected = check_revision("expected_revision", expected_revision)
        return await self._submit("update", check_key(key), check_value(value), expected)

    async def delete(self, key: str, expected_revision: int = 0) -> KeyValue:
        expected = check_revision("expected_revision", expected_revision)
        return await self._submit("delete", check_key(key), b"", expected)

    async def compact(self, revision: int) -> None:
        """Compact in bounded steps, each its own writer operation, so ordinary
        writes interleave. Compacting at or below the current floor is a no-op."""
        check_revision("revision", revision)
        self._check_open()
        if revision > self._committed_revision:
            raise FutureRevisionError(revision, self._committed_revision)
        while self._compact_revision < revision:
            await self._submit("compact", "", b"", revision)

    # -- reads --------------------------------------------------------------

    async def current_revision(self) -> int:
        self._check_open()
        assert self._hub is not None
        return self._hub.revision

    async def get(self, key: str) -> KeyValue | None:
        check_key(key)
        self._check_open()
        assert self._conn is not None
        try:
            return sqlite_log.get_current(self._conn, key)
        except sqlite3.Error as exc:
            raise self._unavailable(exc) from exc

    async def list(
        self,
        prefix: str,
        *,
        revision: int = 0,
        start_after: str = "",
        limit: int = 0,
    ) -> ListResult:
        check_text("prefix", prefix)
        check_text("start_after", start_after)
        check_revision("revision", revision)
        check_revision("limit", limit)
        self._check_open()
        if revision:
            self._check_history(revision)

        def read(conn: sqlite3.Connection) -> ListResult:
            conn.execute("BEGIN")
            try:
                now = sqlite_log.read_revision(conn)
                if revision > now:
                    raise FutureRevisionError(revision, now)
                if revision:
                    items, more = sqlite_log.list_at(conn, prefix, revision, start_after, limit)
                else:
                    items, more = sqlite_log.list_current(conn, prefix, start_after, limit)
            finally:
                conn.execute("COMMIT")
            return ListResult(items, revision or now, more)

        result = await self._read(read)
        if revision:
            # Compaction may have run while we read; never return a partial past.
            self._check_history(revision)
        return result

    def _check_history(self, revision: int) -> None:
        if revision < self._compact_revision:
            raise CompactedError(revision, self._compact_revision)
        if revision > self._committed_revision:
            raise FutureRevisionError(revision, self._committed_revision)

    async def count(self, prefix: str) -> int:
        check_text("prefix", prefix)
        self._check_open()
        return await self._read(lambda conn: sqlite_log.count_current(conn, prefix))

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        assert self._loop is not None
        readers = self._readers
        if readers is None:
            raise StoreUnavailableError(f"sqlite store {self.path} is {self._state}")

        def run() -> T:
            conn = getattr(self._local, "conn", None)
            if conn is None:
                conn = sqlite_log.connect(self.path, readonly=True)
                self._local.conn = conn
                self._reader_conns.append(conn)
            return fn(conn)

        try:
            return await self._loop.run_in_executor(readers, run)
        except sqlite3.Error as exc:
            raise self._unavailable(exc) from exc
        except RuntimeError as exc:  # executor shut down under us by close()
            raise StoreUnavailableError(f"sqlite store {self.path} is {self._state}") from exc

    # -- watch --------------------------------------------------------------

    def watch(self, prefix: str, after_revision: int) -> StoreWatch:
        check_text("prefix", prefix)
        check_revision("after_revision", after_revision)
        self._check_open()
        assert self._hub is not None
        return self._hub.subscribe(prefix, after_revision, self._replay, self._check_watch_from)

    def _check_watch_from(self, after: int) -> None:
        if self._state != "open":
            raise StoreUnavailableError(f"sqlite store {self.path} is {self._state}")
        if after < self._compact_revision:
            raise CompactedError(after, self._compact_revision)

    async def _replay(self, prefix: str, after: int, upto: int) -> AsyncIterator[list[WatchEvent]]:
        assert self._ring is not None
        if self._ring.covers(after):
            events = self._ring.between(prefix, after, upto)
            for i in range(0, len(events), _REPLAY_PAGE):
                yield events[i : i + _REPLAY_PAGE]
            return
        cursor = after
        while cursor < upto:
            start = cursor
            page = await self._read(
                functools.partial(
                    _events_page, prefix=prefix, after=start, upto=upto, page=_REPLAY_PAGE
                )
            )
            if self._compact_revision > start:
                raise CompactedError(after, self._compact_revision)
            if page:
                yield page
            if len(page) < _REPLAY_PAGE:
                break
            cursor = page[-1].kv.mod_revision


def _events_page(
    conn: sqlite3.Connection, *, prefix: str, after: int, upto: int, page: int
) -> list[WatchEvent]:
    return sqlite_log.events_between(conn, prefix, after, upto, page)


def _settle(future: asyncio.Future[Any] | None, result: Any) -> None:
    if future is None or future.done():
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)
