"""The Deployment controller: one ReplicaSet per pod template, rolled over.

Each reconcile reads the Deployment and the ReplicaSets it controls from the
informer caches, makes at most one round of scale decisions (the arithmetic
lives in :mod:`deployment_rollout`), writes them, and writes status. The
ReplicaSet status changes those writes cause bring the key back, so a
rollout advances one level-triggered step at a time.
"""

from __future__ import annotations

import copy
import logging

from corral.client.api import ApiClient
from corral.client.errors import AlreadyExistsError, ApiError, NotFoundError
from corral.client.events import EventRecorder
from corral.client.resources import DEPLOYMENTS, PODS, REPLICASETS
from corral.clock import Clock
from corral.controllers import autorollback as ar
from corral.controllers import deployment_rollout as ro
from corral.controllers.base import Controller
from corral.controllers.informers import SharedInformers, by_namespace, by_owner_uid
from corral.controllers.objects import (
    Obj,
    controller_ref,
    is_deleting,
    is_pod_active,
    key_of,
    make_controller_ref,
    matches_selector,
    meta,
    namespace_of,
    split_key,
)
from corral.controllers.ownership import claim

log = logging.getLogger(__name__)


class DeploymentController(Controller):
    name = "deployment-controller"

    def __init__(
        self,
        client: ApiClient,
        informers: SharedInformers,
        recorder: EventRecorder,
        *,
        clock: Clock | None = None,
        workers: int = 2,
    ) -> None:
        super().__init__(clock=clock, workers=workers)
        self.client = client
        self.recorder = recorder
        self.d_informer = informers.index(DEPLOYMENTS, "namespace", by_namespace)
        self.rs_informer = informers.index(REPLICASETS, "namespace", by_namespace)
        informers.index(REPLICASETS, "owner-uid", by_owner_uid)
        self.pod_informer = informers.index(PODS, "owner-uid", by_owner_uid)
        self.watches(self.d_informer, self.rs_informer, self.pod_informer)
        self.d_informer.add_handler(
            on_add=self._enqueue,
            on_update=lambda old, new: self._enqueue(new),
            on_delete=self._enqueue,
        )
        self.rs_informer.add_handler(
            on_add=self._rs_changed,
            on_update=lambda old, new: (self._rs_changed(old), self._rs_changed(new)),
            on_delete=self._rs_changed,
        )
        self.pod_informer.add_handler(on_update=self._pod_updated, on_delete=self._pod_deleted)

    def _enqueue(self, d: Obj) -> None:
        self.queue.add(key_of(d))

    def _rs_changed(self, rs: Obj) -> None:
        ref = controller_ref(rs)
        if ref is not None:
            if ref.get("kind") == "Deployment":
                self.queue.add(f"{namespace_of(rs)}/{ref.get('name')}")
            return
        for d in self.d_informer.cache.by_index("namespace", namespace_of(rs)):
            if matches_selector((d.get("spec") or {}).get("selector"), meta(rs).get("labels")):
                self._enqueue(d)

    def _pod_deleted(self, pod: Obj) -> None:
        """Recreate waits for old pods to be gone; their deletion is the cue."""
        ref = controller_ref(pod)
        if ref is None or ref.get("kind") != "ReplicaSet":
            return
        rs = self.rs_informer.cache.get(f"{namespace_of(pod)}/{ref.get('name')}")
        if rs is not None:
            self._rs_changed(rs)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        """A new pod starting to crash-loop may trigger an auto-rollback."""
        if ar.crash_looping([new]) and not ar.crash_looping([old]):
            self._pod_deleted(new)

    # -- reconcile ---------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        d = self.d_informer.cache.get(key)
        if d is None:
            return None
        ns, _ = split_key(key)
        selector = (d.get("spec") or {}).get("selector") or {}
        if not (selector.get("matchLabels") or selector.get("matchExpressions")):
            self.recorder.record(d, "Warning", "SelectingAll",
                                 "This deployment is selecting all pods. A non-empty selector is required.")
            return None
        # Work on a copy: the cache's objects are shared with other controllers.
        d = copy.deepcopy(d)
        rses = await claim(
            self.client, REPLICASETS, d, DEPLOYMENTS,
            self.rs_informer.cache.by_index("namespace", ns or ""),
        )
        if is_deleting(d):
            await self._sync_status(d, rses, progress=False)
            return None
        if ar.enabled(d) and await self._auto_rollback(d, rses):
            return None
        if (d.get("spec") or {}).get("paused") or ro.is_scaling_event(d, rses):
            return await self._sync_scale(d, rses)
        if ro.is_rolling(d):
            return await self._rolling(d, rses)
        return await self._recreate(d, rses)

    async def _auto_rollback(self, d: Obj, rses: list[Obj]) -> bool:
        """Roll a failed rollout back to the last good revision; True if it did."""
        new_rs, old = self._split(d, rses)
        if new_rs is None:
            return False
        pods = self.pod_informer.cache.by_index("owner-uid", meta(new_rs).get("uid", ""))
        why = ar.failure(d, new_rs, pods)
        if why is None:
            await self._note_good(d, new_rs)
            return False
        target = ar.last_good(d, new_rs, old)
        if target is None:
            return False
        bad, good = ro.revision(new_rs), ro.revision(target)
        await self.client.replace(DEPLOYMENTS, ar.rolled_back(d, target, bad))
        self.recorder.record(d, "Warning", "AutoRollback",
                             f"Rolled back from revision {bad} to revision {good}: {why}")
        return True

    async def _note_good(self, d: Obj, new_rs: Obj) -> None:
        """Remember the revision of a rollout that completed."""
        cond = ro.get_condition(d.get("status") or {}, "Progressing")
        if cond is None or cond.get("reason") != "NewReplicaSetAvailable":
            return
        rev = str(ro.revision(new_rs))
        if (meta(d).get("annotations") or {}).get(ar.LAST_GOOD) == rev:
            return
        patch = {"metadata": {"annotations": {ar.LAST_GOOD: rev},
                              "resourceVersion": meta(d)["resourceVersion"]}}
        updated = await self.client.patch(DEPLOYMENTS, meta(d)["name"], patch, namespace_of(d))
        d["metadata"] = updated["metadata"]

    def _split(self, d: Obj, rses: list[Obj]) -> tuple[Obj | None, list[Obj]]:
        matching = ro.by_creation([r for r in rses if ro.same_template(r, d)])
        new_rs = matching[0] if matching else None
        return new_rs, [r for r in rses if r is not new_rs]

    async def _new_and_old(self, d: Obj, rses: list[Obj], create: bool) -> tuple[Obj | None, list[Obj]]:
        """The new ReplicaSet (created if asked) with its revision and replica
        annotations brought up to date, and the old ones."""
        new_rs, old = self._split(d, rses)
        rev = ro.max_revision(old) + 1
        if new_rs is None:
            if not create:
                return None, old
            new_rs = await self._create_new_rs(d, rses, rev)
            if new_rs is None:
                return None, old
        else:
            new_rs = await self._refresh_new_rs(d, new_rs, rev)
        await self._set_deployment_revision(d, ro.revision(new_rs))
        return new_rs, old

    async def _refresh_new_rs(self, d: Obj, rs: Obj, rev: int) -> Obj:
        annotations = dict(meta(rs).get("annotations") or {})
        wanted = dict(annotations)
        if ro.revision(rs) < rev:
            wanted[ro.REVISION] = str(rev)
        min_ready = (d.get("spec") or {}).get("minReadySeconds", 0)
        spec_changed = (rs.get("spec") or {}).get("minReadySeconds", 0) != min_ready
        if wanted == annotations and not spec_changed:
            return rs
        updated = copy.deepcopy(rs)
        updated["metadata"]["annotations"] = wanted
        updated["spec"]["minReadySeconds"] = min_ready
        return await self.client.replace(REPLICASETS, updated)

    async def _create_new_rs(self, d: Obj, rses: list[Obj], rev: int) -> Obj | None:
        collisions = int((d.get("status") or {}).get("collisionCount") or 0)
        template = copy.deepcopy((d.get("spec") or {}).get("template") or {})
        h = ro.template_hash(template, collisions)
        template.setdefault("metadata", {}).setdefault("labels", {})[ro.HASH_LABEL] = h
        selector = copy.deepcopy((d.get("spec") or {}).get("selector") or {})
        selector.setdefault("matchLabels", {})[ro.HASH_LABEL] = h
        all_rses = list(rses)
        draft = {"spec": {"replicas": 0}, "metadata": {"name": f"{meta(d)['name']}-{h}"}}
        replicas = ro.new_rs_target(d, all_rses, draft) if ro.is_rolling(d) else 0
        annotations = {ro.REVISION: str(rev), **ro.replicas_annotations(d)}
        rs = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": f"{meta(d)['name']}-{h}",
                "namespace": namespace_of(d),
                "labels": dict(template["metadata"]["labels"]),
                "annotations": annotations,
                "ownerReferences": [make_controller_ref(d, "apps/v1", "Deployment")],
            },
            "spec": {
                "replicas": replicas,
                "minReadySeconds": (d.get("spec") or {}).get("minReadySeconds", 0),
                "selector": selector,
                "template": template,
            },
        }
        try:
            created = await self.client.create(REPLICASETS, rs, namespace_of(d))
        except AlreadyExistsError:
            return await self._on_collision(d, rs)
        if replicas > 0:
            self.recorder.record(d, "Normal", "ScalingReplicaSet",
                                 f"Scaled up replica set {meta(created)['name']} to {replicas}")
        self._progressing(d, "NewReplicaSetCreated", f'Created new replica set "{meta(created)["name"]}"')
        return created

    async def _on_collision(self, d: Obj, wanted: Obj) -> Obj | None:
        """Our name is taken. If it is ours with the same template the cache
        merely lags; otherwise bump collisionCount so the next hash differs."""
        existing = await self.client.get(REPLICASETS, wanted["metadata"]["name"], namespace_of(d))
        ref = controller_ref(existing)
        if ref is not None and ref.get("uid") == meta(d).get("uid") and ro.same_template(existing, d):
            return existing
        status = dict(d.get("status") or {})
        status["collisionCount"] = int(status.get("collisionCount") or 0) + 1
        await self.client.replace_status(DEPLOYMENTS, dict(d, status=status))
        raise ApiError(409, "HashCollision", f"replica set {wanted['metadata']['name']} exists with another template")

    def _progressing(self, d: Obj, reason: str, message: str) -> None:
        now = self.clock.now()
        status = d.setdefault("status", {})
        ro.set_condition(status, "Progressing", "True", reason, message, now)

    async def _set_deployment_revision(self, d: Obj, rev: int) -> None:
        annotations = meta(d).get("annotations") or {}
        if annotations.get(ro.REVISION) == str(rev):
            return
        patch = {"metadata": {"annotations": {ro.REVISION: str(rev)},
                              "resourceVersion": meta(d)["resourceVersion"]}}
        updated = await self.client.patch(DEPLOYMENTS, meta(d)["name"], patch, namespace_of(d))
        d["metadata"] = updated["metadata"]

    async def _scale_rs(self, d: Obj, rs: Obj, size: int) -> Obj:
        current = ro.spec_replicas(rs)
        annotations = dict(meta(rs).get("annotations") or {})
        wanted = {**annotations, **ro.replicas_annotations(d)}
        if current == size and wanted == annotations:
            return rs
        updated = copy.deepcopy(rs)
        updated["spec"]["replicas"] = size
        updated["metadata"]["annotations"] = wanted
        result = await self.client.replace(REPLICASETS, updated)
        if current != size:
            direction = "up" if size > current else "down"
            self.recorder.record(
                d, "Normal", "ScalingReplicaSet",
                f"Scaled {direction} replica set {meta(rs)['name']} to {size} from {current}",
            )
        return result

    async def _apply_targets(self, d: Obj, rses: list[Obj], targets: dict[str, int]) -> tuple[bool, list[Obj]]:
        changed = False
        out = []
        for rs in rses:
            name = meta(rs)["name"]
            if name in targets and targets[name] != ro.spec_replicas(rs):
                rs = await self._scale_rs(d, rs, targets[name])
                changed = True
            out.append(rs)
        return changed, out

    # -- strategies --------------------------------------------------------

    async def _sync_scale(self, d: Obj, rses: list[Obj]) -> float | None:
        new_rs, old = await self._new_and_old(d, rses, create=False)
        targets = ro.proportional_targets(d, new_rs, old)
        everything = ([new_rs] if new_rs else []) + old
        _, everything = await self._apply_targets(d, everything, targets)
        for rs in everything:  # annotate even those whose size is unchanged
            if ro.spec_replicas(rs) > 0:
                await self._scale_rs(d, rs, ro.spec_replicas(rs))
        if (d.get("spec") or {}).get("paused"):
            await self._cleanup(d, old)
        return await self._sync_status(d, everything, progress=False, new_rs=new_rs)

    async def _rolling(self, d: Obj, rses: list[Obj]) -> float | None:
        new_rs, old = await self._new_and_old(d, rses, create=True)
        if new_rs is None:
            return await self._sync_status(d, old, progress=True)
        everything = [new_rs, *old]
        target = ro.new_rs_target(d, everything, new_rs)
        if target != ro.spec_replicas(new_rs):
            new_rs = await self._scale_rs(d, new_rs, target)
            return await self._sync_status(d, [new_rs, *old], progress=True, new_rs=new_rs)
        targets = ro.old_rs_targets(d, everything, old, new_rs)
        changed, old = await self._apply_targets(d, old, targets)
        if not changed and ro.is_complete(d, ro.calculate_status(d, new_rs, everything, self.clock.now())):
            await self._cleanup(d, old)
        return await self._sync_status(d, [new_rs, *old], progress=True, new_rs=new_rs)

    async def _recreate(self, d: Obj, rses: list[Obj]) -> float | None:
        new_rs, old = await self._new_and_old(d, rses, create=False)
        changed, old = await self._apply_targets(d, old, {meta(r)["name"]: 0 for r in old})
        if changed or self._old_pods_running(old):
            return await self._sync_status(d, ([new_rs] if new_rs else []) + old, progress=True, new_rs=new_rs)
        if new_rs is None:
            new_rs, old = await self._new_and_old(d, rses, create=True)
            if new_rs is None:
                return None
        new_rs = await self._scale_rs(d, new_rs, ro.spec_replicas(d))
        everything = [new_rs, *old]
        if ro.is_complete(d, ro.calculate_status(d, new_rs, everything, self.clock.now())):
            await self._cleanup(d, old)
        return await self._sync_status(d, everything, progress=True, new_rs=new_rs)

    def _old_pods_running(self, old: list[Obj]) -> bool:
        for rs in old:
            if ro.status_int(rs, "replicas") > 0:
                return True
            for pod in self.pod_informer.cache.by_index("owner-uid", meta(rs).get("uid", "")):
                if is_pod_active(pod) or is_deleting(pod):
                    return True
        return False

    async def _cleanup(self, d: Obj, old: list[Obj]) -> None:
        for rs in ro.history_to_delete(d, old):
            try:
                await self.client.delete(
                    REPLICASETS, meta(rs)["name"], namespace_of(rs),
                    preconditions={"resourceVersion": meta(rs)["resourceVersion"]},
                )
            except NotFoundError:
                pass

    async def _sync_status(
        self, d: Obj, rses: list[Obj], *, progress: bool, new_rs: Obj | None = None
    ) -> float | None:
        now = self.clock.now()
        if progress:
            status = ro.rollout_status(d, new_rs, rses, now)
        else:
            status = ro.calculate_status(d, new_rs, rses, now)
            paused = bool((d.get("spec") or {}).get("paused"))
            cond = ro.get_condition(status, "Progressing")
            if paused and (cond is None or cond.get("reason") != "DeploymentPaused"):
                ro.set_condition(status, "Progressing", "Unknown", "DeploymentPaused",
                                 "Deployment is paused", now)
            elif not paused and cond is not None and cond.get("reason") == "DeploymentPaused":
                ro.set_condition(status, "Progressing", "Unknown", "DeploymentResumed",
                                 "Deployment is resumed", now)
        if new_rs is not None and ro.get_condition(status, "Progressing") is None:
            ro.set_condition(status, "Progressing", "True", "FoundNewReplicaSet",
                             f'Found new replica set "{meta(new_rs)["name"]}"', now)
        cached = self.d_informer.cache.get(key_of(d)) or {}
        if status != (cached.get("status") or {}):
            d = await self.client.replace_status(DEPLOYMENTS, dict(d, status=status))
        if progress:
            return ro.requeue_for_deadline(d, status, now)
        return None
