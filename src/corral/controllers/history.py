"""ControllerRevisions: the template history of DaemonSets and StatefulSets.

A revision's ``data`` is the patch that puts its template back, in the form
``kubectl rollout undo`` applies (``{"spec": {"template": {..., "$patch":
"replace"}}}``), its name is ``<owner>-<hash>`` and pods made from it carry
the hash in the ``controller-revision-hash`` label. Equal templates share a
revision, so an undo reuses the old revision and bumps its number.
"""

from __future__ import annotations

import copy

from corral.client.api import ApiClient
from corral.client.errors import AlreadyExistsError, NotFoundError
from corral.client.informer import Informer
from corral.client.resources import CONTROLLERREVISIONS, Resource
from corral.controllers.deployment_rollout import template_hash
from corral.controllers.objects import Obj, controller_ref, make_controller_ref, meta, namespace_of

HASH_LABEL = "controller-revision-hash"


def template_of(owner: Obj) -> Obj:
    return copy.deepcopy((owner.get("spec") or {}).get("template") or {})


def revision_data(owner: Obj) -> Obj:
    template = template_of(owner)
    template["$patch"] = "replace"
    return {"spec": {"template": template}}


def revision_hash(owner: Obj) -> str:
    collisions = int((owner.get("status") or {}).get("collisionCount") or 0)
    return template_hash(template_of(owner), collisions)


def owned_revisions(informer: Informer, owner: Obj) -> list[Obj]:
    uid = meta(owner).get("uid", "")
    return sorted(
        (r for r in informer.cache.by_index("owner-uid", uid) if (controller_ref(r) or {}).get("uid") == uid),
        key=lambda r: int(r.get("revision") or 0),
    )


def same_data(rev: Obj, owner: Obj) -> bool:
    return (rev.get("data") or {}) == revision_data(owner)


async def current_revision(client: ApiClient, informer: Informer, owner: Obj, owner_res: Resource) -> Obj:
    """The revision for the owner's template, created or renumbered to be the newest."""
    revisions = owned_revisions(informer, owner)
    newest = max((int(r.get("revision") or 0) for r in revisions), default=0)
    for rev in revisions:
        if same_data(rev, owner):
            if int(rev.get("revision") or 0) == newest:
                return rev
            updated = copy.deepcopy(rev)
            updated["revision"] = newest + 1
            return await client.replace(CONTROLLERREVISIONS, updated)
    name = f"{meta(owner)['name']}-{revision_hash(owner)}"
    labels = dict(((owner.get("spec") or {}).get("template") or {}).get("metadata", {}).get("labels") or {})
    labels[HASH_LABEL] = revision_hash(owner)
    body = {
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "metadata": {"name": name, "namespace": namespace_of(owner), "labels": labels,
                     "ownerReferences": [make_controller_ref(owner, owner_res.api_version, owner_res.kind)]},
        "data": revision_data(owner),
        "revision": newest + 1,
    }
    try:
        return await client.create(CONTROLLERREVISIONS, body, namespace_of(owner))
    except AlreadyExistsError:
        existing = await client.get(CONTROLLERREVISIONS, name, namespace_of(owner))
        if same_data(existing, owner) and (controller_ref(existing) or {}).get("uid") == meta(owner).get("uid"):
            return existing
        raise


async def prune(client: ApiClient, informer: Informer, owner: Obj, in_use: set[str]) -> None:
    """Delete the oldest revisions past revisionHistoryLimit that no pod uses."""
    limit = int((owner.get("spec") or {}).get("revisionHistoryLimit", 10) or 0)
    revisions = owned_revisions(informer, owner)
    idle = [r for r in revisions[:-1] if (meta(r).get("labels") or {}).get(HASH_LABEL) not in in_use]
    for rev in idle[: max(0, len(idle) - limit)]:
        try:
            await client.delete(CONTROLLERREVISIONS, meta(rev)["name"], namespace_of(rev))
        except NotFoundError:
            pass
