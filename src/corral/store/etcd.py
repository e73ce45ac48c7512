"""The HA store: the Store protocol on an etcd v3 cluster.

The mapping is direct, which is why etcd was chosen: a key's
``mod_revision`` is its resourceVersion and etcd's global revision is the
store's. Each write is one etcd transaction whose compare is the protocol's
precondition (``create_revision == 0`` for create, ``mod_revision ==
expected`` for compare-and-swap, ``version > 0`` for "must exist"); the
failure branch reads the key back, so a lost race tells the caller what is
there now without a second round trip. A failed compare takes no revision.

Keys live under ``root`` (from the URL path), so several corral clusters or
test runs can share one etcd; revisions are etcd's and so are shared with
whatever else writes there. History is compacted by the store itself to
about ``history_limit`` revisions, as the API server does for Kubernetes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aetcd import rpc

from corral.store.arguments import check_key, check_revision, check_text, check_value
from corral.store.etcd_conn import (
    EtcdOptions,
    is_unavailable,
    open_channel,
    parse_etcd_url,
    prefix_end,
    translate,
)
from corral.store.etcd_watch import EtcdWatch
from corral.store.protocol import (
    CompactedError,
    ConflictError,
    FutureRevisionError,
    KeyExistsError,
    KeyNotFoundError,
    KeyValue,
    ListResult,
    StoreUnavailableError,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

_CLOSE_DRAIN_SECONDS = 10.0
_READ_RETRY_PAUSE = 0.1


class EtcdStore:
    """A :class:`corral.store.protocol.Store` over etcd (``etcd://`` URLs)."""

    def __init__(self, options: EtcdOptions | str) -> None:
        if isinstance(options, str):
            options = parse_etcd_url(options)
        self.options = options
        # The root is closed with "/" so that root "/a" never sees root "/ab".
        self._root = (options.root + "/").encode() if options.root else b""
        self._state = "new"  # new → open → closed
        self._channel: rpc.Channel | None = None
        self._kv: Any = None
        self._watch_stub: Any = None
        self._watches: set[EtcdWatch] = set()
        self._inflight = 0
        self._drained = asyncio.Event()
        self._compacted = 0  # the highest revision this store knows is compacted
        self._compacting: asyncio.Task[None] | None = None
        self._compact_step = max(1, options.history_limit // 8)

    def __repr__(self) -> str:
        return f"EtcdStore({self.options.describe()})"

    # -- lifecycle ----------------------------------------------------------

    async def start(self) -> None:
        if self._state != "new":
            raise StoreUnavailableError(f"{self!r}: start() called twice")
        self._channel = open_channel(self.options)
        self._kv = rpc.KVStub(self._channel)
        self._watch_stub = rpc.WatchStub(self._channel)
        self._state = "open"
        try:
            await self.current_revision()  # fail now, not on the first request
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """End every watch, let calls already made finish, then hang up."""
        if self._state == "closed":
            return
        self._state = "closed"
        for watch in list(self._watches):
            watch.end()
        if self._inflight:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained.wait(), _CLOSE_DRAIN_SECONDS)
        if self._compacting is not None:
            self._compacting.cancel()
            with contextlib.suppress(BaseException):
                await self._compacting
        for watch in list(self._watches):
            await watch.close()
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    def _check_open(self) -> None:
        if self._state != "open":
            raise StoreUnavailableError(f"{self!r} is {self._state}")

    async def _call(self, what: str, fn: Callable[[], Awaitable[T]], *, retry: bool) -> T:
        """Run one etcd call; reads are retried on another member until the deadline."""
        self._check_open()
        self._inflight += 1
        self._drained.clear()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.timeout
        try:
            while True:
                try:
                    return await fn()
                except rpc.AioRpcError as exc:
                    if not (retry and is_unavailable(exc)) or loop.time() + _READ_RETRY_PAUSE >= deadline:
                        raise
                    log.debug("etcd %s failed (%s); retrying", what, exc.code().name)
                    await asyncio.sleep(_READ_RETRY_PAUSE)
        finally:
            self._inflight -= 1
            if not self._inflight:
                self._drained.set()

    def _rpc_kwargs(self) -> dict[str, Any]:
        return {"timeout": self.options.timeout, "wait_for_ready": True}

    def _key(self, key: str) -> bytes:
        return self._root + key.encode()

    def _kv_of(self, kv: Any) -> KeyValue:
        return KeyValue(kv.key[len(self._root):].decode(), kv.value, kv.create_revision,
                        kv.mod_revision)

    # -- reads --------------------------------------------------------------

    async def current_revision(self) -> int:
        # A count-only read of one key is the cheapest linearizable read.
        req = rpc.RangeRequest(key=self._root + b"\0", count_only=True)

        async def call() -> int:
            return (await self._kv.Range(req, **self._rpc_kwargs())).header.revision

        return await self._read("current_revision", call)

    async def _read(self, what: str, fn: Callable[[], Awaitable[T]], revision: int = 0) -> T:
        try:
            return await self._call(what, fn, retry=True)
        except rpc.AioRpcError as exc:
            raise await self._error(exc, what, revision) from exc

    async def _error(self, exc: rpc.AioRpcError, what: str, revision: int) -> Exception:
        details = exc.details() or ""
        if "compacted" in details:
            return CompactedError(revision, self._oldest_revision(revision))
        if "future revision" in details:
            return FutureRevisionError(revision, await self.current_revision())
        return translate(exc, what, revision=revision)

    async def get(self, key: str) -> KeyValue | None:
        req = rpc.RangeRequest(key=self._key(check_key(key)))

        async def call() -> KeyValue | None:
            resp = await self._kv.Range(req, **self._rpc_kwargs())
            return self._kv_of(resp.kvs[0]) if resp.kvs else None

        return await self._read("get", call)

    async def list(
        self,
        prefix: str,
        *,
        revision: int = 0,
        start_after: str = "",
        limit: int = 0,
    ) -> ListResult:
        full = self._root + check_text("prefix", prefix)
        after = check_text("start_after", start_after)
        check_revision("revision", revision)
        check_revision("limit", limit)
        start = self._root + after + b"\0" if after else (full or b"\0")
        end = prefix_end(full) if full else b"\0"
        req = rpc.RangeRequest(key=max(start, full or b"\0"), range_end=end,
                               revision=revision, limit=limit)

        async def call() -> ListResult:
            resp = await self._kv.Range(req, **self._rpc_kwargs())
            items = [self._kv_of(kv) for kv in resp.kvs]
            return ListResult(items, revision or resp.header.revision, bool(resp.more))

        return await self._read("list", call, revision)

    async def count(self, prefix: str) -> int:
        full = self._root + check_text("prefix", prefix)
        req = rpc.RangeRequest(key=full or b"\0", range_end=prefix_end(full), count_only=True)

        async def call() -> int:
            return int((await self._kv.Range(req, **self._rpc_kwargs())).count)

        return await self._read("count", call)

    def _oldest_revision(self, requested: int) -> int:
        """etcd names its compacted revision only to watches; for reads the
        best bound known here is the newest compaction this store saw or did,
        and at least one past the revision etcd just refused."""
        return max(self._compacted, requested + 1)

    # -- writes -------------------------------------------------------------

    async def _txn(self, what: str, key: bytes, compare: Any, success: Any) -> Any:
        req = rpc.TxnRequest(
            compare=[compare],
            success=[success],
            failure=[rpc.RequestOp(request_range=rpc.RangeRequest(key=key))],
        )

        async def call() -> Any:
            return await self._kv.Txn(req, **self._rpc_kwargs())

        try:
            resp = await self._call(what, call, retry=False)
        except rpc.AioRpcError as exc:
            raise translate(exc, what) from exc
        if resp.succeeded:
            self._maybe_compact(resp.header.revision)
        return resp

    def _failure_kv(self, resp: Any) -> KeyValue | None:
        kvs = resp.responses[0].response_range.kvs
        return self._kv_of(kvs[0]) if kvs else None

    async def create(self, key: str, value: bytes) -> KeyValue:
        k = self._key(check_key(key))
        v = check_value(value)
        compare = rpc.Compare(key=k, result=rpc.Compare.EQUAL, target=rpc.Compare.CREATE,
                              create_revision=0)
        put = rpc.RequestOp(request_put=rpc.PutRequest(key=k, value=v))
        resp = await self._txn("create", k, compare, put)
        if not resp.succeeded:
            raise KeyExistsError(key)
        rev = resp.header.revision
        return KeyValue(key, v, rev, rev)

    def _precondition(self, k: bytes, expected: int) -> Any:
        if expected:
            return rpc.Compare(key=k, result=rpc.Compare.EQUAL, target=rpc.Compare.MOD,
                               mod_revision=expected)
        return rpc.Compare(key=k, result=rpc.Compare.GREATER, target=rpc.Compare.VERSION,
                           version=0)

    async def update(self, key: str, value: bytes, expected_revision: int) -> KeyValue:
        k = self._key(check_key(key))
        v = check_value(value)
        expected = check_revision("expected_revision", expected_revision)
        put = rpc.RequestOp(request_put=rpc.PutRequest(key=k, value=v, prev_kv=True))
        resp = await self._txn("update", k, self._precondition(k, expected), put)
        if not resp.succeeded:
            current = self._failure_kv(resp)
            if current is None:
                raise KeyNotFoundError(key)
            raise ConflictError(key, expected, current)
        prev = resp.responses[0].response_put.prev_kv
        return KeyValue(key, v, prev.create_revision, resp.header.revision)

    async def delete(self, key: str, expected_revision: int = 0) -> KeyValue:
        k = self._key(check_key(key))
        expected = check_revision("expected_revision", expected_revision)
        op = rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=k, prev_kv=True))
        resp = await self._txn("delete", k, self._precondition(k, expected), op)
        if not resp.succeeded:
            current = self._failure_kv(resp)
            if current is None:
                raise KeyNotFoundError(key)
            raise ConflictError(key, expected, current)
        prevs = resp.responses[0].response_delete_range.prev_kvs
        if not prevs:  # deleted between compare and delete: impossible inside one txn
            raise KeyNotFoundError(key)
        return KeyValue(key, prevs[0].value, prevs[0].create_revision, resp.header.revision)

    # -- compaction ---------------------------------------------------------

    async def compact(self, revision: int) -> None:
        """Compaction is cluster-wide in etcd; compacting at or below what is
        already compacted is a no-op."""
        check_revision("revision", revision)
        req = rpc.CompactionRequest(revision=revision)

        async def call() -> Any:
            return await self._kv.Compact(req, **self._rpc_kwargs())

        try:
            await self._call("compact", call, retry=True)
        except rpc.AioRpcError as exc:
            details = exc.details() or ""
            if "compacted" in details:
                return
            if "future revision" in details:
                raise FutureRevisionError(revision, await self.current_revision()) from exc
            raise translate(exc, "compact", revision=revision) from exc
        self._compacted = max(self._compacted, revision)

    def _maybe_compact(self, revision: int) -> None:
        """Keep about ``history_limit`` revisions: compact in the background
        whenever a write finds history a step longer than that."""
        target = revision - self.options.history_limit
        if target - self._compacted < self._compact_step or self._state != "open":
            return
        if self._compacting is not None and not self._compacting.done():
            return
        self._compacted = target  # claimed now, so a burst starts one compaction
        self._compacting = asyncio.create_task(self._compact_quietly(target))

    async def _compact_quietly(self, revision: int) -> None:
        try:
            await self.compact(revision)
        except (StoreUnavailableError, FutureRevisionError) as exc:
            log.info("automatic compaction to %d skipped: %s", revision, exc)

    # -- watch --------------------------------------------------------------

    def watch(self, prefix: str, after_revision: int) -> EtcdWatch:
        full = self._root + check_text("prefix", prefix)
        check_revision("after_revision", after_revision)
        self._check_open()
        watch = EtcdWatch(self, full, after_revision, self.options.watch_buffer)
        self._watches.add(watch)
        watch.start()
        return watch

    # Used by EtcdWatch; kept here so the watch needs no channel of its own.
    def _watch_call(self) -> Any:
        self._check_open()
        return self._watch_stub.Watch(metadata=(("hasleader", "true"),), wait_for_ready=True)

    def _forget(self, watch: EtcdWatch) -> None:
        self._watches.discard(watch)

    @property
    def closed(self) -> bool:
        return self._state == "closed"
