"""Adoption and release: how an owner claims the objects its selector picks.

Like Kubernetes' ControllerRefManager: an orphan that matches the selector is
adopted (a controller ownerReference is added), an object we control that no
longer matches is released (our reference removed). Both writes are merge
patches that carry the object's resourceVersion, so they lose cleanly to a
concurrent writer; the caller's next reconcile sees the fresh state.
"""

from __future__ import annotations

import logging
from typing import Any

from corral.client.api import ApiClient
from corral.client.errors import NotFoundError
from corral.client.resources import Resource
from corral.controllers.objects import (
    Obj,
    controller_ref,
    is_deleting,
    make_controller_ref,
    matches_selector,
    meta,
    namespace_of,
)

log = logging.getLogger(__name__)


def queue_owners_of_pods(pods: Any, kind: str, queue: Any, expectations: Any) -> None:
    """Turn events of pods controlled by a ``kind`` into that owner's key;
    a pod's arrival also meets one of the owner's creation expectations."""

    def owner(pod: Obj) -> str | None:
        ref = controller_ref(pod)
        if ref is None or ref.get("kind") != kind:
            return None
        return f"{namespace_of(pod)}/{ref.get('name')}"

    def added(pod: Obj) -> None:
        if (key := owner(pod)) is not None:
            expectations.creation_observed(key)
            queue.add(key)

    def changed(pod: Obj) -> None:
        if (key := owner(pod)) is not None:
            queue.add(key)

    pods.add_handler(on_add=added, on_update=lambda old, new: changed(new), on_delete=changed)


async def claim(
    client: ApiClient,
    res: Resource,
    owner: Obj,
    owner_res: Resource,
    candidates: list[Obj],
) -> list[Obj]:
    """The candidates the owner controls after adopting and releasing."""
    uid = meta(owner).get("uid")
    selector = (owner.get("spec") or {}).get("selector")
    claimed: list[Obj] = []
    for obj in candidates:
        ref = controller_ref(obj)
        matches = matches_selector(selector, meta(obj).get("labels"))
        if ref is not None:
            if ref.get("uid") != uid:
                continue
            if matches or is_deleting(owner) or is_deleting(obj):
                claimed.append(obj)
                continue
            await _release(client, res, obj, uid)
            continue
        if not matches or is_deleting(owner) or is_deleting(obj):
            continue
        adopted = await _adopt(client, res, obj, owner, owner_res)
        if adopted is not None:
            claimed.append(adopted)
    return claimed


async def _adopt(
    client: ApiClient, res: Resource, obj: Obj, owner: Obj, owner_res: Resource
) -> Obj | None:
    refs = list(meta(obj).get("ownerReferences") or [])
    refs.append(make_controller_ref(owner, owner_res.api_version, owner_res.kind))
    patch = {"metadata": {"ownerReferences": refs, "resourceVersion": meta(obj)["resourceVersion"]}}
    try:
        return await client.patch(res, meta(obj)["name"], patch, meta(obj).get("namespace"))
    except NotFoundError:
        return None


async def _release(client: ApiClient, res: Resource, obj: Obj, uid: str | None) -> None:
    refs = [r for r in meta(obj).get("ownerReferences") or [] if r.get("uid") != uid]
    patch = {"metadata": {"ownerReferences": refs or None, "resourceVersion": meta(obj)["resourceVersion"]}}
    try:
        await client.patch(res, meta(obj)["name"], patch, meta(obj).get("namespace"))
    except NotFoundError:
        pass
