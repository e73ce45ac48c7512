"""The objects admission reads on every pod create, kept in memory from the
store's watch: PriorityClasses, ServiceAccounts, LimitRanges, which
namespaces hold ResourceQuotas, and each namespace's Pod Security level.

Kubernetes' admission plugins read these from informer-backed listers for
the same reason: a pod create should not cost a store round trip per
policy kind (in an API worker, each is a request to the store's owner,
which pays for it too). Each API process keeps its own view.

What the view cannot vouch for, it says so (``MISS`` / None) and the caller
reads the store, as before:

- a named object it does not hold: a ServiceAccount or PriorityClass
  created a moment ago (possibly through another API process) is then still
  found, so a pod is never refused because the view lags;
- anything while it is not synced (before the first list, while re-listing);
- a kind that outgrew ``max_objects`` (the view drops it rather than grow
  without bound, and reads the store for it until the next list);
- a kind and namespace this process has just admitted a write of
  (:meth:`touched`), for ``FORCE_LIVE_SECONDS``, so a client that creates
  a LimitRange or a default PriorityClass and then a pod through one server
  sees its own write.

As with Kubernetes' listers, an answer from the view (a class's
globalDefault flag, a ServiceAccount's automount choice, "no LimitRange
here") may trail a write made through another server by the watch's delay;
once the watch has caught up it is exactly what a store read would give.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Final

import orjson

from corral.api.podsecurity import LABEL as POD_SECURITY_LABEL
from corral.api.storefollower import StoreFollower
from corral.store.protocol import EventType, KeyValue, Store

Obj = dict[str, Any]

FORCE_LIVE_SECONDS = 5.0
MAX_TOUCHED = 4096
MAX_OBJECTS = 100_000


class _Miss:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISS"


MISS: Final = _Miss()
"""The view cannot answer; read the store."""


def _whole(kv: KeyValue) -> Obj:
    obj: Obj = orjson.loads(kv.value)
    obj.setdefault("metadata", {})["resourceVersion"] = str(kv.mod_revision)
    return obj


def _automount(kv: KeyValue) -> Obj:
    # Admission reads only this field of a ServiceAccount; keep no more.
    choice = orjson.loads(kv.value).get("automountServiceAccountToken")
    return {"automountServiceAccountToken": choice} if isinstance(choice, bool) else {}


def _nothing(kv: KeyValue) -> None:
    return None


def _security_level(kv: KeyValue) -> str | None:
    labels = (orjson.loads(kv.value).get("metadata") or {}).get("labels") or {}
    level = labels.get(POD_SECURITY_LABEL)
    return level if isinstance(level, str) else None


# plural -> (namespaced, what of an object the view keeps)
KINDS: dict[str, tuple[bool, Callable[[KeyValue], Any]]] = {
    "priorityclasses": (False, _whole),
    "serviceaccounts": (True, _automount),
    "limitranges": (True, _whole),
    "resourcequotas": (True, _nothing),
    "namespaces": (False, _security_level),
}
_GROUPS = {"priorityclasses": ("scheduling.k8s.io", "v1")}


class AdmissionView(StoreFollower):
    """One process's cached view; see the module docstring for when it answers."""

    name = "admission view"

    def __init__(self, store: Store, registry: Any, *, max_objects: int = MAX_OBJECTS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.store, self.registry, self.max_objects, self.clock = store, registry, max_objects, clock
        # plural -> namespace ("" when cluster-scoped) -> name -> what KINDS keeps
        self._data: dict[str, dict[str, dict[str, Any]]] = {p: {} for p in KINDS}
        self._sizes: dict[str, int] = dict.fromkeys(KINDS, 0)
        self._overflowed: set[str] = set()
        self._touched: dict[tuple[str, str], float] = {}
        self._all_live_until = 0.0

    # -- answers -------------------------------------------------------------

    def usable(self, plural: str, namespace: str = "") -> bool:
        if not self.synced or plural in self._overflowed:
            return False
        if self._touched or self._all_live_until:
            now = self.clock()
            if now < self._all_live_until:
                return False
            until = self._touched.get((plural, namespace))
            if until is not None:
                if now < until:
                    return False
                del self._touched[(plural, namespace)]
        return True

    def get(self, plural: str, namespace: str, name: str) -> Any:
        """What the view keeps of one object, or MISS (absent or not vouched for).
        Callers must not change what they get: it is the view's own copy."""
        if not self.usable(plural, namespace):
            return MISS
        return self._data[plural].get(namespace, {}).get(name, MISS)

    def listed(self, plural: str, namespace: str = "") -> list[Any] | None:
        """Every object of a kind in a namespace, or None when the view cannot vouch for the set."""
        if not self.usable(plural, namespace):
            return None
        return list(self._data[plural].get(namespace, {}).values())

    def may_have(self, plural: str, namespace: str) -> bool:
        """False only when the view knows the namespace holds none of ``plural``."""
        return not self.usable(plural, namespace) or bool(self._data[plural].get(namespace))

    def touched(self, plural: str, namespace: str = "") -> None:
        """This process is admitting a write of ``plural`` in ``namespace``:
        read the store for it for a while, so its writer sees it at once."""
        if plural not in KINDS:
            return
        now = self.clock()
        if len(self._touched) >= MAX_TOUCHED:
            self._touched = {k: t for k, t in self._touched.items() if t > now}
            if len(self._touched) >= MAX_TOUCHED:  # a storm of policy writes: read everything live
                self._touched.clear()
                self._all_live_until = now + FORCE_LIVE_SECONDS
        self._touched[(plural, namespace)] = now + FORCE_LIVE_SECONDS

    def size(self) -> int:
        return sum(self._sizes.values())

    # -- following the store -------------------------------------------------

    def _prefixes(self) -> dict[str, str]:
        found = {}
        for plural in KINDS:
            group, version = _GROUPS.get(plural, ("", "v1"))
            rt = self.registry.lookup(group, version, plural)
            if rt is not None:
                found[rt.storage_prefix] = plural
        return found

    async def _sync_and_watch(self) -> None:
        prefixes = self._prefixes()
        revision = 0
        fresh: dict[str, dict[str, dict[str, Any]]] = {p: {} for p in KINDS}
        sizes = dict.fromkeys(KINDS, 0)
        overflowed: set[str] = set()
        for prefix, plural in prefixes.items():
            result = await self.store.list(prefix, revision=revision)
            revision = result.revision
            if len(result.items) > self.max_objects:
                overflowed.add(plural)
                continue
            keep = KINDS[plural][1]
            for kv in result.items:
                namespace, name = self._split(plural, kv.key[len(prefix):])
                fresh[plural].setdefault(namespace, {})[name] = keep(kv)
            sizes[plural] = len(result.items)
        self._data, self._sizes, self._overflowed = fresh, sizes, overflowed
        self.synced = True
        # A TaskGroup, not gather: when one watch breaks, the others must end
        # too, or every re-list would leave another set of followers behind.
        async with asyncio.TaskGroup() as group:
            for prefix, plural in prefixes.items():
                group.create_task(self._follow(prefix, plural, revision))

    async def _follow(self, prefix: str, plural: str, revision: int) -> None:
        watch = self.store.watch(prefix, revision)
        try:
            async for event in watch:
                if plural not in self._overflowed:
                    self._apply(plural, prefix, event.type, event.kv)
        finally:
            await watch.close()

    def _apply(self, plural: str, prefix: str, kind: EventType, kv: KeyValue) -> None:
        namespace, name = self._split(plural, kv.key[len(prefix):])
        objects = self._data[plural]
        if kind is EventType.DELETE:
            inner = objects.get(namespace)
            if inner is not None and inner.pop(name, MISS) is not MISS:
                self._sizes[plural] -= 1
                if not inner:
                    del objects[namespace]
            return
        inner = objects.setdefault(namespace, {})
        if name not in inner:
            if self._sizes[plural] >= self.max_objects:
                self._overflowed.add(plural)  # until the next list; the store answers meanwhile
                self._data[plural], self._sizes[plural] = {}, 0
                return
            self._sizes[plural] += 1
        inner[name] = KINDS[plural][1](kv)

    @staticmethod
    def _split(plural: str, rest: str) -> tuple[str, str]:
        if KINDS[plural][0]:
            namespace, _, name = rest.partition("/")
            return namespace, name
        return "", rest
