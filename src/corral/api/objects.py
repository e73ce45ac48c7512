"""Create, update and delete with Kubernetes' object semantics.

This layer knows metadata rules (uid, generation, generateName, finalizers,
graceful deletion, the spec/status split) but nothing of HTTP, so that an
in-process caller gets exactly the semantics a remote client gets. Every
write is a compare-and-swap on the revision it read; a lost race is retried
from fresh state unless the caller pinned a resourceVersion, in which case it
is a 409 for the caller to resolve.
"""

from __future__ import annotations

import os
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson

from corral.api.codec import decode, deep_copy, encode
from corral.api.errors import (
    AlreadyExists,
    BadRequest,
    Conflict,
    ServiceUnavailable,
    invalid,
    not_found,
)
from corral.api.uids import new_uid
from corral.clock import Clock, format_timestamp
from corral.resources.types import FieldCause, ResourceType
from corral.resources.validation import validate_object_meta
from corral.store.protocol import (
    ConflictError,
    KeyExistsError,
    KeyNotFoundError,
    KeyValue,
    Store,
    StoreUnavailableError,
)

Obj = dict[str, Any]
Transform = Callable[[Obj], Obj | Awaitable[Obj]]

MAX_UPDATE_RETRIES = 32
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # Kubernetes' alphabet: no vowels, no 0/1/3


_names = random.Random()
os.register_at_fork(after_in_child=_names.seed)  # API workers forked from one parent draw apart


def random_suffix(n: int = 5, alphabet: str = _NAME_ALPHABET) -> str:
    """A generated name's random part. Like Kubernetes' (math/rand), it only
    has to make collisions rare (a create that hits one is a 409 the client
    retries), not be unguessable; ``secrets`` made a ``getrandom`` system
    call per character, which on a busy server's event loop also had to win
    the GIL back each time."""
    return "".join(_names.choices(alphabet, k=n))


@dataclass(slots=True)
class DeleteOptions:
    grace_period_seconds: int | None = None
    propagation_policy: str | None = None  # Background, Foreground, Orphan
    precondition_uid: str | None = None
    precondition_resource_version: str | None = None
    dry_run: bool = False


def conflict_error(rt: ResourceType, name: str) -> Conflict:
    what = f"{rt.plural}.{rt.group}" if rt.group else rt.plural
    return Conflict(
        f'Operation cannot be fulfilled on {what} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again",
        kind=rt.plural, name=name, group=rt.group,
    )


def _meta_causes(rt: ResourceType, obj: Obj, old: Obj | None) -> list[FieldCause]:
    causes = validate_object_meta(obj.get("metadata") or {}, rt.namespaced,
                                  rt.extra.get("name_format", "subdomain"))
    return causes + rt.validator(obj, old)


def _update_causes(rt: ResourceType, new: Obj, current: Obj, subresource: str | None) -> list[FieldCause]:
    if subresource == "status":
        # The metadata is the stored object's (managedFields aside, which the
        # server wrote): it was judged when it was stored.
        return rt.validator(new, current)
    # A binding is the one write allowed to set spec.nodeName; judge the
    # result as a whole rather than as an update of an immutable spec.
    return _meta_causes(rt, new, None if subresource == "binding" else current)


def _spec_of(rt: ResourceType, obj: Obj) -> Obj:
    """Everything that counts toward metadata.generation: all but metadata and status."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def drop_nulls(value: Any) -> Any:
    """Remove null fields in place. Kubernetes decodes into structs where a
    null and a missing field are the same zero value; storing them alike keeps
    comparisons (template hashes, no-op updates) honest."""
    if _has_null(value):  # one pass in C; most objects have none
        _drop_nulls(value)
    return value


def _has_null(value: Any) -> bool:
    return isinstance(value, dict | list) and b"null" in orjson.dumps(value)


def _drop_nulls(value: Any) -> None:
    """Descends only into maps and lists whose JSON holds a null (a status
    write's conditions carry ``lastProbeTime: null``; walking the whole pod
    in Python for those cost more than the rest of the null handling)."""
    if isinstance(value, dict):
        for key in [k for k, v in value.items() if v is None]:
            del value[key]
        children: Any = value.values()
    else:
        children = value
    for v in children:
        if _has_null(v):
            _drop_nulls(v)


def _without_nulls(desired: Obj, subresource: str | None) -> Obj:
    """``desired`` with its nulls dropped where they can reach the store: a
    status write keeps only its status (and managedFields, which the server
    wrote) of it."""
    if subresource != "status" or not isinstance(desired, dict):
        return drop_nulls(desired)
    if desired.get("status") is None:
        desired.pop("status", None)
    else:
        drop_nulls(desired["status"])
    return desired


def _deletion_blocked(obj: Obj) -> bool:
    """Finalizers (and for namespaces, spec.finalizers) hold a deleted object."""
    if (obj.get("metadata") or {}).get("finalizers"):
        return True
    return obj.get("kind") == "Namespace" and bool((obj.get("spec") or {}).get("finalizers"))


class ObjectStore:
    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        self.namespaces: Any = None
        """A :class:`~corral.api.namespaces.NamespaceIndex` once the server runs one."""
        self.shared_decode: Callable[[KeyValue], Obj] = decode
        """How a write that only reads the stored version (a status write,
        a binding) decodes it: the server's watch fan-out's cached decode,
        so a version this process has already parsed for its watchers (and
        its node authorizer) is not parsed again. What it returns is shared
        and must never be modified."""

    async def get(self, rt: ResourceType, namespace: str | None, name: str) -> Obj:
        return decode(await self._stored(rt, namespace, name))

    async def get_shared(self, rt: ResourceType, namespace: str | None, name: str) -> Obj:
        """:meth:`get` through ``shared_decode``, for a caller that only reads
        the object (a TokenRequest reads the ServiceAccount and the pod it
        binds to): never to be modified or handed out."""
        return self.shared_decode(await self._stored(rt, namespace, name))

    async def _stored(self, rt: ResourceType, namespace: str | None, name: str) -> KeyValue:
        try:
            kv = await self.store.get(rt.key(namespace, name))
        except StoreUnavailableError as exc:
            raise ServiceUnavailable(f"storage is unavailable: {exc}") from exc
        if kv is None:
            raise not_found(rt.plural, name, rt.group)
        return kv

    # -- create -------------------------------------------------------------

    def _prepare_create(self, rt: ResourceType, namespace: str | None, obj: Obj) -> Obj:
        drop_nulls(obj)
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise BadRequest("metadata must be an object")
        if rt.namespaced:
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
        for field in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
            meta.pop(field, None)
        meta["uid"] = new_uid()
        meta["creationTimestamp"] = format_timestamp(self.clock.now())
        meta["generation"] = 1
        rt.defaulter(obj)
        return obj

    async def create(
        self, rt: ResourceType, namespace: str | None, obj: Obj, *, dry_run: bool = False
    ) -> Obj:
        obj = self._prepare_create(rt, namespace, obj)
        meta = obj["metadata"]
        generate = not meta.get("name") and meta.get("generateName")
        for _attempt in range(8):
            if generate:
                meta["name"] = f"{meta['generateName']}{random_suffix()}"
            causes = _meta_causes(rt, obj, None)
            if not meta.get("name") and not any(c.field == "metadata.name" for c in causes):
                causes.insert(0, FieldCause("metadata.name", "Required value: name or generateName is required",
                                            "FieldValueRequired"))
            if causes:
                raise invalid(rt.kind, meta.get("name") or meta.get("generateName") or "", causes, rt.group)
            if dry_run:
                return obj
            try:
                kv = await self.store.create(rt.key(namespace, meta["name"]), encode(obj))
            except KeyExistsError:
                if generate:
                    continue
                what = f"{rt.plural}.{rt.group}" if rt.group else rt.plural
                raise AlreadyExists(
                    f'{what} "{meta["name"]}" already exists',
                    kind=rt.plural, name=meta["name"], group=rt.group,
                ) from None
            except StoreUnavailableError as exc:
                raise ServiceUnavailable(f"storage is unavailable: {exc}") from exc
            # The stored bytes are encode(obj): hand back obj itself rather
            # than parsing them again.
            meta["resourceVersion"] = str(kv.mod_revision)
            return obj
        raise AlreadyExists(f"could not generate a unique name from {meta['generateName']!r}")

    # -- update -------------------------------------------------------------

    def _carry_over(self, rt: ResourceType, current: Obj, new: Obj, subresource: str | None) -> Obj:
        """Apply the fields a client may not change through this endpoint."""
        cur_meta, new_meta = current["metadata"], new.setdefault("metadata", {})
        if not isinstance(new_meta, dict):
            raise BadRequest("metadata must be an object")
        for field in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
                      "generation", "name", "namespace"):
            if field in cur_meta:
                new_meta[field] = cur_meta[field]
            else:
                new_meta.pop(field, None)
        if rt.namespaced and "namespace" not in new_meta:
            new_meta["namespace"] = cur_meta.get("namespace")
        new["apiVersion"], new["kind"] = rt.api_version, rt.kind
        if subresource == "status":
            # Only status and the managedFields recording the write are taken
            # (Kubernetes' ResetObjectMetaForStatus). The rest is the current
            # object's own maps, shared rather than copied: nothing below
            # changes them, and a pod's spec is most of a status write's bytes.
            result = dict(current)
            result["metadata"] = meta = dict(cur_meta)
            if "managedFields" in new_meta:
                meta["managedFields"] = new_meta["managedFields"]
            result["status"] = new.get("status", {})
            return result
        if rt.has_status and subresource is None:
            if "status" in current:
                new["status"] = current["status"]
            else:
                new.pop("status", None)
        return new

    async def update(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        transform: Transform,
        *,
        expected_rv: str | None = None,
        subresource: str | None = None,
        create_missing: Callable[[], Awaitable[Obj]] | None = None,
        dry_run: bool = False,
        transform_reads_only: bool = False,
    ) -> Obj:
        """Read-modify-write. ``transform`` gets a private copy of the current
        object and returns the desired one (with ``transform_reads_only``,
        for a transform that never modifies what it is given, the current
        object itself: a copy of a pod was a tenth of a status write). A
        stale ``expected_rv`` is a 409; otherwise lost races are retried from
        fresh state."""
        key = rt.key(namespace, name)
        for _attempt in range(MAX_UPDATE_RETRIES):
            kv = await self.store.get(key)
            if kv is None:
                if create_missing is not None:
                    return await create_missing()
                raise not_found(rt.plural, name, rt.group)
            # A reads-only status write builds its result from copies of the
            # maps it changes (_carry_over): the stored version may be shared.
            shared = transform_reads_only and subresource == "status"
            current = self.shared_decode(kv) if shared else decode(kv)
            if expected_rv and expected_rv != current["metadata"]["resourceVersion"]:
                raise conflict_error(rt, name)
            desired = transform(current if transform_reads_only else deep_copy(current))
            if isinstance(desired, Awaitable):
                desired = await desired
            new_rv = (desired.get("metadata") or {}).get("resourceVersion")
            if new_rv and new_rv != current["metadata"]["resourceVersion"]:
                raise conflict_error(rt, name)
            new = self._carry_over(rt, current, _without_nulls(desired, subresource), subresource)
            if subresource != "status":
                rt.prepare_update(new, current)
                rt.defaulter(new)
            if _spec_of(rt, new) != _spec_of(rt, current):
                new["metadata"]["generation"] = int(current["metadata"].get("generation") or 1) + 1
            causes = _update_causes(rt, new, current, subresource)
            if causes:
                raise invalid(rt.kind, name, causes, rt.group)
            if dry_run:
                return new
            if new == current:
                return decode(kv) if shared else current  # the caller's own, never the shared one
            try:
                if new["metadata"].get("deletionTimestamp") and not _deletion_blocked(new) \
                        and self._grace_elapsed(new):
                    stored = await self.store.delete(key, kv.mod_revision)
                    return decode(stored)
                written = await self.store.update(key, encode(new), kv.mod_revision)
                # The stored bytes are encode(new): hand back new itself
                # rather than parsing them again (as create does).
                new["metadata"]["resourceVersion"] = str(written.mod_revision)
                return new
            except (ConflictError, KeyNotFoundError):
                if expected_rv:
                    raise conflict_error(rt, name) from None
                continue
            except StoreUnavailableError as exc:
                raise ServiceUnavailable(f"storage is unavailable: {exc}") from exc
        raise conflict_error(rt, name)

    async def update_fields(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        change: Callable[[Obj], Obj],
        check: Callable[[Obj], list[FieldCause]],
    ) -> Obj:
        """Read-modify-write of a few fields that ``check`` judges, for a
        write whose request carries only those (a binding: spec.nodeName and
        the PodScheduled condition). ``change`` gets a shallow copy of the
        current object with its own ``metadata`` map and must copy any deeper
        map it changes, so the stored object is never modified and the
        unchanged parts are shared, not copied. Those parts were defaulted and
        judged when they were stored, so they are neither defaulted nor
        validated again (for a binding that was most of the write's cost).
        Deleting is not this path's business: ``change`` never sets a
        deletionTimestamp. Lost races are retried from fresh state."""
        key = rt.key(namespace, name)
        for _attempt in range(MAX_UPDATE_RETRIES):
            kv = await self.store.get(key)
            if kv is None:
                raise not_found(rt.plural, name, rt.group)
            current = self.shared_decode(kv)
            new = dict(current)
            new["metadata"] = dict(current["metadata"])
            new = change(new)
            if _spec_of(rt, new) != _spec_of(rt, current):
                new["metadata"]["generation"] = int(current["metadata"].get("generation") or 1) + 1
            causes = check(new)
            if causes:
                raise invalid(rt.kind, name, causes, rt.group)
            if new == current:
                return decode(kv)  # the caller's own, never the shared one
            try:
                written = await self.store.update(key, encode(new), kv.mod_revision)
            except (ConflictError, KeyNotFoundError):
                continue
            except StoreUnavailableError as exc:
                raise ServiceUnavailable(f"storage is unavailable: {exc}") from exc
            new["metadata"]["resourceVersion"] = str(written.mod_revision)
            return new
        raise conflict_error(rt, name)

    def _grace_elapsed(self, obj: Obj) -> bool:
        """A pod in its grace period waits for its agent; everything else goes
        when its last finalizer does."""
        return obj.get("kind") != "Pod" or not obj["metadata"].get("deletionGracePeriodSeconds")

    # -- delete -------------------------------------------------------------

    def _grace_for(self, rt: ResourceType, obj: Obj, options: DeleteOptions) -> int:
        if rt.kind != "Pod":
            return 0
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        if not spec.get("nodeName") or status.get("phase") in ("Succeeded", "Failed"):
            return 0  # nothing runs it: no one to wait for
        if options.grace_period_seconds is not None:
            return max(0, options.grace_period_seconds)
        return int(spec.get("terminationGracePeriodSeconds", 30))

    def _check_preconditions(self, rt: ResourceType, obj: Obj, options: DeleteOptions) -> None:
        meta = obj["metadata"]
        if options.precondition_uid and options.precondition_uid != meta.get("uid"):
            raise Conflict(
                f"Precondition failed: UID in precondition: {options.precondition_uid}, "
                f"UID in object meta: {meta.get('uid')}", kind=rt.plural, name=meta["name"],
            )
        rv = options.precondition_resource_version
        if rv and rv != meta.get("resourceVersion"):
            raise Conflict(
                f"Precondition failed: ResourceVersion in precondition: {rv}, "
                f"ResourceVersion in object meta: {meta.get('resourceVersion')}",
                kind=rt.plural, name=meta["name"],
            )

    def _mark_deleted(self, rt: ResourceType, obj: Obj, options: DeleteOptions, grace: int) -> Obj:
        meta = obj["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        policy = options.propagation_policy
        if policy == "Foreground" and "foregroundDeletion" not in finalizers:
            finalizers.append("foregroundDeletion")
        elif policy == "Orphan" and "orphan" not in finalizers:
            finalizers.append("orphan")
        if finalizers:
            meta["finalizers"] = finalizers
        existing = meta.get("deletionGracePeriodSeconds")
        if meta.get("deletionTimestamp") and existing is not None and grace >= existing:
            return obj  # a second delete may only shorten the grace period
        meta["deletionTimestamp"] = format_timestamp(self.clock.now() + timedelta(seconds=grace))
        meta["deletionGracePeriodSeconds"] = grace
        if rt.kind == "Namespace":
            obj.setdefault("status", {})["phase"] = "Terminating"
        return obj

    async def delete(
        self, rt: ResourceType, namespace: str | None, name: str, options: DeleteOptions
    ) -> tuple[Obj, bool]:
        """Returns (object, gone): gone is False while finalizers or a pod's
        grace period hold the object."""
        key = rt.key(namespace, name)
        if self.namespaces is not None and rt.kind == "Namespace" and not rt.group:
            self.namespaces.forget(name)  # before the write: no create may trust a stale "live"
        for _attempt in range(MAX_UPDATE_RETRIES):
            kv = await self.store.get(key)
            if kv is None:
                raise not_found(rt.plural, name, rt.group)
            current = decode(kv)
            self._check_preconditions(rt, current, options)
            grace = self._grace_for(rt, current, options)
            marked = self._mark_deleted(rt, deep_copy(current), options, grace)
            held = _deletion_blocked(marked) or grace > 0
            if options.dry_run:
                return marked, not held
            try:
                if held:
                    if marked == current:
                        return current, False
                    return decode(await self.store.update(key, encode(marked), kv.mod_revision)), False
                return decode(await self.store.delete(key, kv.mod_revision)), True
            except (ConflictError, KeyNotFoundError):
                continue
            except StoreUnavailableError as exc:
                raise ServiceUnavailable(f"storage is unavailable: {exc}") from exc
        raise conflict_error(rt, name)

