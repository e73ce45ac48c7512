"""List and watch with Kubernetes' resourceVersion semantics.

A list is read at one store revision; its continue token carries that
revision and the last key, so every page of one list is consistent even
while writes go on. A watch starts after a revision (or with the current
objects as ADDED) and is served by the resource's dispatcher (api/fanout.py);
objects that move into or out of a selector arrive as ADDED or DELETED, as
Kubernetes sends them (api/watchsub.py).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from corral.api.codec import decode
from corral.api.errors import BadRequest, Gone, ServiceUnavailable
from corral.api.fanout import WatchFanout
from corral.api.selectors import (
    FieldRequirement,
    Requirement,
    fields_match,
    labels_match,
)
from corral.api.watchsub import ApiEvent, Subscription, object_fields
from corral.resources.types import ResourceType
from corral.store.protocol import (
    CompactedError,
    FutureRevisionError,
    Store,
    StoreUnavailableError,
)

Obj = dict[str, Any]
MAX_PAGE = 10_000


@dataclass(frozen=True, slots=True)
class Filter:
    labels: list[Requirement]
    fields: list[FieldRequirement]

    @property
    def empty(self) -> bool:
        return not self.labels and not self.fields

    def matches(self, rt: ResourceType, obj: Obj, fields: Mapping[str, str] | None = None) -> bool:
        """``fields``: the object's field values when the caller has them."""
        if self.labels and not labels_match(self.labels, (obj.get("metadata") or {}).get("labels")):
            return False
        if self.fields:
            return fields_match(self.fields, object_fields(rt, obj) if fields is None else fields)
        return True


def encode_continue(revision: int, last_key: str) -> str:
    raw = orjson.dumps({"v": "meta.k8s.io/v1", "rv": revision, "start": last_key})
    return base64.urlsafe_b64encode(raw).decode()


def decode_continue(token: str) -> tuple[int, str]:
    try:
        data = orjson.loads(base64.urlsafe_b64decode(token.encode() + b"=="))
        return int(data["rv"]), str(data["start"])
    except (ValueError, KeyError, TypeError) as exc:
        raise BadRequest(f"continue key is not valid: {exc}") from exc


def parse_resource_version(value: str | None, what: str = "resourceVersion") -> int:
    if value in (None, ""):
        return 0
    try:
        rv = int(value)  # type: ignore[arg-type]
    except ValueError:
        raise BadRequest(f'{what}: Invalid value: "{value}": must be an integer') from None
    if rv < 0:
        raise BadRequest(f'{what}: Invalid value: "{value}": must not be negative')
    return rv


@dataclass(slots=True)
class ListPage:
    items: list[Obj]
    revision: int
    continue_token: str
    remaining: int | None


async def list_objects(
    store: Store,
    rt: ResourceType,
    namespace: str | None,
    flt: Filter,
    *,
    limit: int = 0,
    continue_token: str = "",
    resource_version: str | None = None,
    resource_version_match: str | None = None,
) -> ListPage:
    """Limit counts matching objects (Kubernetes filters before it cuts)."""
    prefix = rt.prefix(namespace)
    start_after, revision = "", 0
    if resource_version_match not in (None, "", "Exact", "NotOlderThan"):
        raise BadRequest(
            f'resourceVersionMatch: Unsupported value: "{resource_version_match}": '
            'supported values: "Exact", "NotOlderThan"'
        )
    if continue_token:
        revision, start_after = decode_continue(continue_token)
    elif resource_version_match == "Exact":
        revision = parse_resource_version(resource_version)
    else:
        parse_resource_version(resource_version)  # reject junk even though "now" satisfies it
    if limit < 0:
        raise BadRequest("limit: Invalid value: must be a non-negative integer")
    items: list[Obj] = []
    try:
        while True:
            want = min(MAX_PAGE, max(limit - len(items), 1) * (1 if flt.empty else 4)) if limit else 0
            result = await store.list(prefix, revision=revision, start_after=start_after, limit=want)
            revision = result.revision
            for kv in result.items:
                obj = decode(kv)
                if flt.matches(rt, obj):
                    items.append(obj)
            if result.items:
                start_after = result.items[-1].key
            if not result.more or (limit and len(items) >= limit):
                break
    except CompactedError as exc:
        raise Gone(
            "The provided continue parameter is too old to display a consistent list result. "
            "You can start a new list without the continue parameter."
            if continue_token else f"too old resource version: {exc.requested} ({exc.oldest})"
        ) from exc
    except FutureRevisionError as exc:
        raise Gone(f"too large resource version: {exc.requested}, current: {exc.current}") from exc
    except StoreUnavailableError as exc:
        raise ServiceUnavailable(f"storage is unavailable: {exc}") from exc
    token = ""
    if limit and (len(items) > limit or (len(items) == limit and result.more)):
        items = items[:limit]
        last = items[-1]["metadata"]
        token = encode_continue(revision, rt.key(last.get("namespace"), last["name"]))
    return ListPage(items, revision, token, None)


async def open_watch(
    store: Store,
    rt: ResourceType,
    namespace: str | None,
    flt: Filter,
    *,
    resource_version: str | None,
    send_initial: bool,
    fanout: WatchFanout,
) -> Subscription:
    """Events after ``resource_version``; with ``send_initial`` (no version or
    "0"), first a synthetic ADDED for every current object, as Kubernetes does."""
    seen: set[str] = set()
    initial: list[ApiEvent] = []
    if send_initial:
        page = await list_objects(store, rt, namespace, flt)
        for obj in page.items:
            seen.add(rt.key(obj["metadata"].get("namespace"), obj["metadata"]["name"]))
            initial.append(ApiEvent("ADDED", obj, page.revision))
        start = page.revision
    else:
        start = parse_resource_version(resource_version)
    return await fanout.subscribe(store, rt, namespace, flt, start, seen=seen, initial=initial)
