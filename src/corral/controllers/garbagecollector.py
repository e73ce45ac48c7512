"""The garbage collector: cascading deletion along ownerReferences.

Three duties, as in Kubernetes:

* background: an object whose owners are all gone is deleted; one with some
  owners left loses only the dangling references;
* foreground: an owner carrying the ``foregroundDeletion`` finalizer and a
  deletionTimestamp has its dependents deleted, and loses the finalizer once
  no dependent with blockOwnerDeletion remains;
* orphan: an owner carrying the ``orphan`` finalizer has its references
  stripped from every dependent, then loses the finalizer.

An owner missing from our caches is confirmed missing with a live GET before
anything is deleted: a cache that lags a fresh owner must never cost its
dependents their lives.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from enum import Enum

from corral.client.api import ApiClient
from corral.client.errors import NotFoundError
from corral.client.informer import Informer
from corral.client.resources import (
    CONTROLLERREVISIONS,
    CRONJOBS,
    DAEMONSETS,
    DEPLOYMENTS,
    JOBS,
    PODS,
    REPLICASETS,
    STATEFULSETS,
    Resource,
    by_kind,
)
from corral.clock import Clock
from corral.controllers.base import Controller
from corral.controllers.informers import SharedInformers, by_owner_uid, by_uid
from corral.controllers.objects import Obj, is_deleting, key_of, meta, namespace_of

log = logging.getLogger(__name__)

_JUDGED = ("ownerReferences", "deletionTimestamp", "finalizers", "uid")
"""The metadata an update must change for the collector to look again."""

FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"
# Every kind that owns or is owned in the built-in workloads; an owner kind
# outside this list is still looked up live (by_kind), never assumed gone.
DEFAULT_RESOURCES: tuple[Resource, ...] = (
    PODS, REPLICASETS, DEPLOYMENTS, DAEMONSETS, STATEFULSETS, CONTROLLERREVISIONS, JOBS, CRONJOBS,
)


class OwnerState(Enum):
    PRESENT = "present"
    ABSENT = "absent"
    UNKNOWN = "unknown"  # a kind we cannot look up: never treat as absent


def dangling_decision(refs: list[Obj], states: dict[str, OwnerState]) -> str:
    """What to do with a dependent given the state of each owner uid:
    ``delete`` (every owner is gone), ``strip`` (some are) or ``keep``."""
    if not refs:
        return "keep"
    absent = [r for r in refs if states.get(r.get("uid", "")) is OwnerState.ABSENT]
    if not absent:
        return "keep"
    return "delete" if len(absent) == len(refs) else "strip"


def blocking_dependents(owner_uid: str, dependents: list[Obj]) -> list[Obj]:
    """Dependents a foreground deletion must wait for."""
    out = []
    for dep in dependents:
        for ref in meta(dep).get("ownerReferences") or []:
            if ref.get("uid") == owner_uid and ref.get("blockOwnerDeletion"):
                out.append(dep)
                break
    return out


class GarbageCollector(Controller):
    name = "garbage-collector"

    def __init__(
        self,
        client: ApiClient,
        informers: SharedInformers,
        *,
        resources: Sequence[Resource] = DEFAULT_RESOURCES,
        clock: Clock | None = None,
        workers: int = 2,
    ) -> None:
        super().__init__(clock=clock, workers=workers)
        self.client = client
        self.resources = list(resources)
        self._informers: dict[str, Informer] = {}
        for res in self.resources:
            informer = informers.index(res, "uid", by_uid)
            informers.index(res, "owner-uid", by_owner_uid)
            tag = _tag(res)
            self._informers[tag] = informer
            informer.add_handler(
                on_add=lambda o, t=tag: self._changed(t, o),
                on_update=lambda old, new, t=tag: self._updated(t, old, new),
                on_delete=lambda o, t=tag: self._deleted(t, o),
            )
            self.watches(informer)

    # -- handlers ----------------------------------------------------------

    def _changed(self, tag: str, obj: Obj) -> None:
        md = meta(obj)
        if md.get("ownerReferences") or (
            md.get("deletionTimestamp") and {FOREGROUND, ORPHAN} & set(md.get("finalizers") or [])
        ):
            self.queue.add(f"{tag}|{key_of(obj)}")

    def _updated(self, tag: str, old: Obj, new: Obj) -> None:
        """Only a change the collector judges on: its owner references, or
        its deletion and finalizers (as Kubernetes' graph builder looks at an
        update). A pod's status writes used to queue a reconcile each."""
        before, after = meta(old), meta(new)
        if any(before.get(k) != after.get(k) for k in _JUDGED):
            self._changed(tag, new)

    def _deleted(self, tag: str, obj: Obj) -> None:
        uid = meta(obj).get("uid", "")
        for dep_tag, dep in self._dependents(uid):
            self.queue.add(f"{dep_tag}|{key_of(dep)}")
        # An owner in foreground deletion may be waiting for exactly this one.
        for ref in meta(obj).get("ownerReferences") or []:
            for owner_tag, owner in self._by_uid(ref.get("uid", "")):
                self.queue.add(f"{owner_tag}|{key_of(owner)}")

    def _dependents(self, uid: str) -> list[tuple[str, Obj]]:
        return [(t, o) for t, i in self._informers.items() for o in i.cache.by_index("owner-uid", uid)]

    def _by_uid(self, uid: str) -> list[tuple[str, Obj]]:
        return [(t, o) for t, i in self._informers.items() for o in i.cache.by_index("uid", uid)]

    # -- reconcile ---------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        tag, _, obj_key = key.partition("|")
        informer = self._informers.get(tag)
        if informer is None:
            return None
        obj = informer.cache.get(obj_key)
        if obj is None:
            return None
        res = informer.res
        finalizers = meta(obj).get("finalizers") or []
        if is_deleting(obj) and ORPHAN in finalizers:
            await self._orphan(res, obj)
            return None
        if is_deleting(obj) and FOREGROUND in finalizers:
            return await self._foreground(res, obj)
        if is_deleting(obj):
            return None  # already on its way out (a pod's grace period): deleting again only adds writes
        await self._collect(res, obj)
        return None

    async def _collect(self, res: Resource, obj: Obj) -> None:
        refs = list(meta(obj).get("ownerReferences") or [])
        states = {r.get("uid", ""): await self._owner_state(obj, r) for r in refs}
        decision = dangling_decision(refs, states)
        if decision == "delete":
            log.info("gc: deleting %s %s: all owners are gone", res.kind, key_of(obj))
            try:
                await self.client.delete(
                    res, meta(obj)["name"], namespace_of(obj) or None,
                    propagation_policy="Background",
                    preconditions={"uid": meta(obj)["uid"]},
                )
            except NotFoundError:
                pass
        elif decision == "strip":
            keep = [r for r in refs if states.get(r.get("uid", "")) is not OwnerState.ABSENT]
            await self._set_refs(res, obj, keep)

    async def _owner_state(self, dependent: Obj, ref: Obj) -> OwnerState:
        uid = ref.get("uid", "")
        try:
            owner_res = by_kind(ref.get("apiVersion", ""), ref.get("kind", ""))
        except KeyError:
            owner_res = None
        # The reference names its owner's kind: look in that kind's cache
        # alone (every pod event used to look in all eight).
        informer = self._informers.get(_tag(owner_res)) if owner_res is not None else None
        if informer.cache.by_index("uid", uid) if informer is not None else self._by_uid(uid):
            return OwnerState.PRESENT
        if owner_res is None:
            return OwnerState.UNKNOWN
        ns = namespace_of(dependent) if owner_res.namespaced else None
        try:
            live = await self.client.get(owner_res, ref.get("name", ""), ns)
        except NotFoundError:
            return OwnerState.ABSENT
        return OwnerState.PRESENT if meta(live).get("uid") == uid else OwnerState.ABSENT

    async def _set_refs(self, res: Resource, obj: Obj, refs: list[Obj]) -> None:
        patch = {"metadata": {"ownerReferences": refs or None,
                              "resourceVersion": meta(obj)["resourceVersion"]}}
        try:
            await self.client.patch(res, meta(obj)["name"], patch, namespace_of(obj) or None)
        except NotFoundError:
            pass

    async def _orphan(self, res: Resource, owner: Obj) -> None:
        uid = meta(owner).get("uid", "")
        for tag, dep in self._dependents(uid):
            refs = [r for r in meta(dep).get("ownerReferences") or [] if r.get("uid") != uid]
            await self._set_refs(self._informers[tag].res, dep, refs)
        await self._remove_finalizer(res, owner, ORPHAN)

    async def _foreground(self, res: Resource, owner: Obj) -> float | None:
        uid = meta(owner).get("uid", "")
        dependents = self._dependents(uid)
        for tag, dep in dependents:
            if is_deleting(dep):
                continue
            dep_res = self._informers[tag].res
            # A dependent that itself has blocking dependents is deleted in
            # the foreground too, so the chain is torn down leaves first.
            policy = "Foreground" if blocking_dependents(meta(dep).get("uid", ""), [
                o for _, o in self._dependents(meta(dep).get("uid", ""))]) else "Background"
            try:
                await self.client.delete(dep_res, meta(dep)["name"], namespace_of(dep) or None,
                                         propagation_policy=policy)
            except NotFoundError:
                pass
        if blocking_dependents(uid, [o for _, o in dependents]):
            return None  # their deletion events bring us back
        await self._remove_finalizer(res, owner, FOREGROUND)
        return None

    async def _remove_finalizer(self, res: Resource, obj: Obj, finalizer: str) -> None:
        remaining = [f for f in meta(obj).get("finalizers") or [] if f != finalizer]
        patch = {"metadata": {"finalizers": remaining or None,
                              "resourceVersion": meta(obj)["resourceVersion"]}}
        try:
            await self.client.patch(res, meta(obj)["name"], patch, namespace_of(obj) or None)
        except NotFoundError:
            pass


def _tag(res: Resource) -> str:
    return f"{res.plural}.{res.group}" if res.group else res.plural
