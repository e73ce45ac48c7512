"""A list+watch cache of one resource, with event handlers (client-go's
reflector, indexer and shared informer, simplified).

The informer lists, replaces its cache, then watches from the list's
resourceVersion. It never assumes it saw every event: a 410 or any gap makes
it re-list and diff the fresh list against the cache, firing add/update/delete
for what changed, so level-triggered consumers converge all the same.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from corral.client.api import ApiClient
from corral.client.backoff import Backoff
from corral.client.cache import Cache, IndexFunc, object_key
from corral.client.errors import GoneError
from corral.client.resources import Resource
from corral.clock import Clock, RealClock

log = logging.getLogger(__name__)

__all__ = ["Informer", "object_key", "strip_managed_fields", "wait_for_sync"]

# A watch that ends sooner than this without delivering anything is treated
# as a failure and backed off, so a server that closes streams at once does
# not turn the informer into a busy loop.
SHORT_WATCH = 1.0
WATCH_TIMEOUT_MIN = 300


@dataclass
class _Handler:
    on_add: Callable[[dict[str, Any]], None] | None
    on_update: Callable[[dict[str, Any], dict[str, Any]], None] | None
    on_delete: Callable[[dict[str, Any]], None] | None


class Informer:
    def __init__(
        self,
        client: ApiClient,
        res: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        clock: Clock | None = None,
        page_size: int = 500,
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        """``transform``: applied to every listed or watched object before
        it is cached or handed to a handler (client-go's SetTransform); it
        gets the informer's own freshly decoded object and may change it in
        place, e.g. :func:`strip_managed_fields`."""
        self.client = client
        self.res = res
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.page_size = page_size
        self.transform = transform
        self.cache = Cache()
        self.resource_version = ""
        self.lists = 0  # how many times the informer has (re-)listed
        self._clock = clock or RealClock()
        self._handlers: list[_Handler] = []
        self._synced = asyncio.Event()
        self._backoff = Backoff(0.2, 30.0)
        self.blind_since: float | None = None
        """Monotonic time the stream from the server broke (a connection
        error), until a list or an event arrives again; None while it flows.
        What this informer did not see meanwhile is the observer's gap, not
        the objects' silence."""
        self.on_sight: Callable[[float], None] | None = None
        """Called with the seconds spent blind when the stream is back."""

    # -- configuration -----------------------------------------------------

    def add_handler(
        self,
        on_add: Callable[[dict[str, Any]], None] | None = None,
        on_update: Callable[[dict[str, Any], dict[str, Any]], None] | None = None,
        on_delete: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        """Handlers must be quick and only enqueue work. A handler added
        after the first list gets an add for every object already cached."""
        handler = _Handler(on_add, on_update, on_delete)
        self._handlers.append(handler)
        if handler.on_add is not None:
            for obj in self.cache.list():
                _call(handler.on_add, obj)

    def add_index(self, name: str, func: IndexFunc) -> None:
        self.cache.add_index(name, func)

    @property
    def synced(self) -> bool:
        return self._synced.is_set()

    async def wait_synced(self, timeout: float | None = None) -> None:
        """Return once the first list is in the cache; TimeoutError after ``timeout``."""
        async with asyncio.timeout(timeout):
            await self._synced.wait()

    # -- the loop ----------------------------------------------------------

    async def run(self) -> None:
        """List and watch until cancelled.

        Run again after a cancel, it resumes watching from where it stopped
        (a 410 then re-lists and diffs), so a component that pauses its
        informers keeps its caches and handlers see only what changed.
        """
        need_list = not self.synced
        expired = False  # the last attempt ended in 410
        while True:
            try:
                if need_list:
                    await self._list()
                    need_list = False
                healthy = await self._watch()
                expired = False
                if healthy:
                    self._backoff.reset()
                    continue
                delay = self._backoff.next()
                log.info("%s watch ended at once; re-watching in %.1fs", self.res.plural, delay)
            except asyncio.CancelledError:
                raise
            except GoneError:
                # Our resourceVersion fell out of the server's history. The
                # first expiry re-lists at once; expiring again straight after
                # a fresh list means something is wrong, so back off.
                log.info("%s watch expired at rv %s; re-listing", self.res.plural, self.resource_version)
                need_list = True
                if not expired:
                    expired = True
                    continue
                delay = self._backoff.next()
            except Exception as exc:
                if self.blind_since is None:
                    self.blind_since = self._clock.monotonic()
                delay = self._backoff.next()
                log.warning("%s informer: %s; retrying in %.1fs", self.res.plural, exc, delay)
            await self._clock.sleep(delay)

    async def _list(self) -> None:
        items, rv = await self.client.list_all(
            self.res,
            self.namespace,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
            page_size=self.page_size,
        )
        self.lists += 1
        if self.transform is not None:
            items = [self.transform(obj) for obj in items]
        self.replace(items, rv)
        self._synced.set()
        self._regain_sight()

    async def _watch(self) -> bool:
        """Stream events into the cache; True if the stream was worth having
        (it carried events or lasted), False if it ended at once."""
        started = self._clock.monotonic()
        delivered = 0
        timeout = random.randint(WATCH_TIMEOUT_MIN, 2 * WATCH_TIMEOUT_MIN)
        stream = self.client.watch_batches(
            self.res,
            self.namespace,
            resource_version=self.resource_version or None,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
            timeout_seconds=timeout,
            allow_bookmarks=True,
        )
        apply, transform = self.apply, self.transform
        try:
            async for batch in stream:
                if self.blind_since is not None:
                    self._regain_sight()
                for type_, obj in batch:
                    apply(type_, obj if transform is None or type_ == "BOOKMARK" else transform(obj))
                delivered += len(batch)
        finally:
            await stream.aclose()
        return delivered > 0 or self._clock.monotonic() - started >= SHORT_WATCH

    def _regain_sight(self) -> None:
        if self.blind_since is None:
            return
        blind, self.blind_since = self._clock.monotonic() - self.blind_since, None
        if self.on_sight is not None:
            self.on_sight(blind)

    # -- cache updates (public so a fake-free test can drive them) ---------

    def replace(self, items: list[dict[str, Any]], resource_version: str) -> None:
        """Make the cache equal to a fresh list, firing handlers for the
        difference: adds for new keys, updates for changed objects, deletes
        (with the last known state) for keys that vanished."""
        fresh = {object_key(obj): obj for obj in items}
        for key in [k for k in self.cache.keys() if k not in fresh]:
            old = self.cache.remove(key)
            if old is not None:
                self._fire_delete(old)
        for obj in fresh.values():
            old = self.cache.put(obj)
            if old is None:
                self._fire_add(obj)
            elif _rv(old) != _rv(obj) or not _rv(obj):
                self._fire_update(old, obj)
        self.resource_version = resource_version

    def apply(self, type_: str, obj: dict[str, Any]) -> None:
        """One watch event into the cache."""
        rv = _rv(obj)
        if type_ in ("ADDED", "MODIFIED"):
            old = self.cache.put(obj)
            if old is None:
                self._fire_add(obj)
            else:
                self._fire_update(old, obj)
        elif type_ == "DELETED":
            self.cache.remove(object_key(obj))
            self._fire_delete(obj)
        if rv:
            self.resource_version = rv

    def _fire_add(self, obj: dict[str, Any]) -> None:
        for h in self._handlers:
            if h.on_add is not None:
                _call(h.on_add, obj)

    def _fire_update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        for h in self._handlers:
            if h.on_update is not None:
                _call(h.on_update, old, new)

    def _fire_delete(self, obj: dict[str, Any]) -> None:
        for h in self._handlers:
            if h.on_delete is not None:
                _call(h.on_delete, obj)


def strip_managed_fields(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` without ``metadata.managedFields`` (a transform): what the
    controllers and the scheduler never read, and, as many small maps, a
    third or more of a pod's objects. Fewer objects kept per cached version
    is less for the garbage collector to walk on every young collection
    (kube-scheduler and kube-controller-manager drop them the same way).
    An update sent from such an object leaves the stored managedFields as
    they are, as an update without the field does in Kubernetes."""
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        meta.pop("managedFields", None)
    return obj


def _call(func: Callable[..., None], *args: dict[str, Any]) -> None:
    try:
        func(*args)
    except Exception:
        log.exception("informer handler %r failed", func)


def _rv(obj: dict[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


async def wait_for_sync(*informers: Informer, timeout: float | None = None) -> None:
    """Wait until every informer has listed once (a controller's start gate)."""
    async with asyncio.timeout(timeout):
        for informer in informers:
            await informer.wait_synced()
