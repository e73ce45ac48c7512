"""The StatefulSet controller: pods with stable names ``<set>-<ordinal>``.

OrderedReady management creates pods one at a time in ordinal order, each
after the previous is Ready, and removes them highest first; Parallel does
both all at once. A template change rolls from the highest ordinal down to
``partition``, one pod at a time; ordinals below the partition keep (and are
recreated from) the current revision. Revisions are ControllerRevisions.
"""

from __future__ import annotations

import copy
import logging
import re

from corral.client.api import ApiClient
from corral.client.errors import AlreadyExistsError, NotFoundError
from corral.client.events import EventRecorder
from corral.client.resources import CONTROLLERREVISIONS, PODS, STATEFULSETS
from corral.clock import Clock
from corral.controllers import history
from corral.controllers.base import Controller
from corral.controllers.informers import SharedInformers, by_namespace, by_owner_uid
from corral.controllers.objects import (
    Obj,
    controller_ref,
    int_field,
    is_deleting,
    is_pod_available,
    is_pod_ready,
    key_of,
    make_controller_ref,
    meta,
    namespace_of,
)

log = logging.getLogger(__name__)

POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"


def ordinal_of(sts: Obj, pod: Obj) -> int | None:
    m = re.fullmatch(re.escape(meta(sts)["name"]) + r"-(\d+)", meta(pod).get("name", ""))
    return int(m.group(1)) if m else None


def wanted_ordinals(sts: Obj) -> range:
    start = int_field(sts, "spec", "ordinals", "start")
    return range(start, start + int_field(sts, "spec", "replicas", default=1))


def partition(sts: Obj) -> int:
    strategy = (sts.get("spec") or {}).get("updateStrategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        return 1 << 31  # OnDelete: never replace a running pod
    return int((strategy.get("rollingUpdate") or {}).get("partition") or 0)


def stateful_pod(sts: Obj, ordinal: int, template: Obj, hash_: str) -> Obj:
    template = copy.deepcopy(template)
    tmeta = template.get("metadata") or {}
    spec = template.get("spec") or {}
    name = f"{meta(sts)['name']}-{ordinal}"
    spec["hostname"] = name
    service = (sts.get("spec") or {}).get("serviceName")
    if service:
        spec["subdomain"] = service
    labels = dict(tmeta.get("labels") or {})
    labels.update({history.HASH_LABEL: hash_, POD_NAME_LABEL: name, POD_INDEX_LABEL: str(ordinal)})
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace_of(sts), "labels": labels,
                     "annotations": dict(tmeta.get("annotations") or {}),
                     "ownerReferences": [make_controller_ref(sts, "apps/v1", "StatefulSet")]},
        "spec": spec,
    }


def _hash(pod: Obj) -> str | None:
    return (meta(pod).get("labels") or {}).get(history.HASH_LABEL)


class StatefulSetController(Controller):
    name = "statefulset-controller"

    def __init__(self, client: ApiClient, informers: SharedInformers, recorder: EventRecorder, *,
                 clock: Clock | None = None, workers: int = 2) -> None:
        super().__init__(clock=clock, workers=workers)
        self.client = client
        self.recorder = recorder
        self.sets = informers.index(STATEFULSETS, "namespace", by_namespace)
        self.pods = informers.index(PODS, "owner-uid", by_owner_uid)
        self.revisions = informers.index(CONTROLLERREVISIONS, "owner-uid", by_owner_uid)
        self.watches(self.sets, self.pods, self.revisions)
        self.sets.add_handler(on_add=self._enqueue, on_update=lambda o, n: self._enqueue(n))
        self.pods.add_handler(on_add=self._pod, on_update=lambda o, n: self._pod(n), on_delete=self._pod)

    def _enqueue(self, sts: Obj) -> None:
        self.queue.add(key_of(sts))

    def _pod(self, pod: Obj) -> None:
        ref = controller_ref(pod)
        if ref is not None and ref.get("kind") == "StatefulSet":
            self.queue.add(f"{namespace_of(pod)}/{ref.get('name')}")

    async def reconcile(self, key: str) -> float | None:
        sts = self.sets.cache.get(key)
        if sts is None or is_deleting(sts):
            return None
        sts = copy.deepcopy(sts)
        update = await history.current_revision(self.client, self.revisions, sts, STATEFULSETS)
        update_hash = (meta(update).get("labels") or {}).get(history.HASH_LABEL) or ""
        status = dict(sts.get("status") or {})
        current_hash = status.get("currentRevision", "").removeprefix(f"{meta(sts)['name']}-") or update_hash
        uid = meta(sts).get("uid", "")
        pods = {o: p for p in self.pods.cache.by_index("owner-uid", uid)
                if (controller_ref(p) or {}).get("uid") == uid and (o := ordinal_of(sts, p)) is not None}
        await self._step(sts, pods, update_hash, current_hash)
        return await self._write_status(sts, pods, update_hash, current_hash)

    def _template_for(self, sts: Obj, ordinal: int, update_hash: str, current_hash: str) -> tuple[Obj, str]:
        if ordinal < partition(sts) and current_hash != update_hash:
            for rev in history.owned_revisions(self.revisions, sts):
                if (meta(rev).get("labels") or {}).get(history.HASH_LABEL) == current_hash:
                    template = copy.deepcopy(((rev.get("data") or {}).get("spec") or {}).get("template") or {})
                    template.pop("$patch", None)
                    return template, current_hash
        return copy.deepcopy((sts.get("spec") or {}).get("template") or {}), update_hash

    async def _step(self, sts: Obj, pods: dict[int, Obj], update_hash: str, current_hash: str) -> None:
        ordered = (sts.get("spec") or {}).get("podManagementPolicy", "OrderedReady") == "OrderedReady"
        wanted = wanted_ordinals(sts)
        for ordinal in wanted:
            pod = pods.get(ordinal)
            if pod is not None and (pod.get("status") or {}).get("phase") in ("Failed", "Succeeded") \
                    and not is_deleting(pod):
                await self._delete(sts, pod)
                if ordered:
                    return
                continue
            if pod is None:
                template, hash_ = self._template_for(sts, ordinal, update_hash, current_hash)
                await self._create(sts, stateful_pod(sts, ordinal, template, hash_))
                if ordered:
                    return
                continue
            if ordered and (is_deleting(pod) or not is_pod_ready(pod)):
                return  # wait for this one before touching the next
        condemned = sorted((o for o in pods if o not in wanted), reverse=True)
        for ordinal in condemned:
            if not is_deleting(pods[ordinal]):
                await self._delete(sts, pods[ordinal])
            if ordered:
                return
        if ordered and any(is_deleting(p) or not is_pod_ready(p) for o, p in pods.items() if o in wanted):
            return
        for ordinal in sorted(wanted, reverse=True):
            pod = pods.get(ordinal)
            if ordinal < partition(sts) or pod is None:
                continue
            if _hash(pod) != update_hash and not is_deleting(pod):
                await self._delete(sts, pod)
                return  # one at a time, highest first
            if is_deleting(pod) or not is_pod_ready(pod):
                return

    async def _create(self, sts: Obj, pod: Obj) -> None:
        try:
            await self.client.create(PODS, pod, namespace_of(sts))
        except AlreadyExistsError:
            return
        self.recorder.record(sts, "Normal", "SuccessfulCreate",
                             f"create Pod {meta(pod)['name']} in StatefulSet {meta(sts)['name']} successful")

    async def _delete(self, sts: Obj, pod: Obj) -> None:
        try:
            await self.client.delete(PODS, meta(pod)["name"], namespace_of(pod))
        except NotFoundError:
            return
        self.recorder.record(sts, "Normal", "SuccessfulDelete",
                             f"delete Pod {meta(pod)['name']} in StatefulSet {meta(sts)['name']} successful")

    async def _write_status(self, sts: Obj, pods: dict[int, Obj], update_hash: str,
                            current_hash: str) -> float | None:
        now = self.clock.now()
        min_ready = int_field(sts, "spec", "minReadySeconds")
        live = [p for p in pods.values() if not is_deleting(p)]
        updated = sum(1 for p in live if _hash(p) == update_hash)
        replicas = int_field(sts, "spec", "replicas", default=1)
        name = meta(sts)["name"]
        if updated == replicas and len(live) == replicas and all(is_pod_ready(p) for p in live):
            current_hash = update_hash
        status = dict(sts.get("status") or {})
        status.update(
            observedGeneration=meta(sts).get("generation", 1), replicas=len(live),
            readyReplicas=sum(1 for p in live if is_pod_ready(p)),
            availableReplicas=sum(1 for p in live if is_pod_available(p, min_ready, now)),
            currentReplicas=sum(1 for p in live if _hash(p) == current_hash),
            updatedReplicas=updated, currentRevision=f"{name}-{current_hash}",
            updateRevision=f"{name}-{update_hash}",
        )
        if status != (sts.get("status") or {}):
            await self.client.replace_status(STATEFULSETS, dict(sts, status=status))
        await history.prune(self.client, self.revisions, sts,
                            {h for p in live if (h := _hash(p))} | {current_hash, update_hash})
        return float(min_ready) if min_ready and status["readyReplicas"] != status["availableReplicas"] else None
