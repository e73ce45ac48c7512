"""The ReplicaSet controller: keep spec.replicas pods matching the selector.

Pods are created in slow-start batches (1, 2, 4, ...) so that a template the
server rejects costs one failed request, not five hundred. Pods to delete are
picked by Kubernetes' ranking: the least useful go first. Expectations stop
a second round of creates while the pod informer still lags our own writes.

A sync costs what changed since the last one, not the ReplicaSet's size:
pod events mark the pods to judge again in the owner's :class:`PodTally`,
and updates that change nothing the status depends on wake nobody.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from dataclasses import dataclass, field
from datetime import datetime

from corral.client.api import ApiClient
from corral.client.errors import ApiError, NotFoundError
from corral.client.events import EventRecorder
from corral.client.resources import PODS, REPLICASETS
from corral.clock import Clock, parse_timestamp
from corral.controllers.base import Controller
from corral.controllers.expectations import Expectations
from corral.controllers.informers import SharedInformers, by_namespace
from corral.controllers.objects import (
    Obj,
    controller_ref,
    int_field,
    is_deleting,
    is_pod_active,
    is_pod_available,
    is_pod_ready,
    key_of,
    make_controller_ref,
    matches_selector,
    meta,
    namespace_of,
    ready_since,
)
from corral.controllers.ownership import claim

log = logging.getLogger(__name__)

BURST_REPLICAS = 500
# ReplicaSets synced at once: kube-controller-manager's
# --concurrent-replicaset-syncs default. A sync creating a burst waits for
# its slow-start batches one after another, so with 2 a burst of five
# Deployments made pods for two of them at a time.
CONCURRENT_SYNCS = 5
CONTROLLER_INDEX = "replicaset-controller/controller"


def by_controller(pod: Obj) -> list[str]:
    """Pods under their controller's uid, pods without one under their
    namespace: the only pods a ReplicaSet may keep or adopt. (Inlined: the
    cache calls this twice per pod event, for every pod.)"""
    md = pod.get("metadata") or {}
    for ref in md.get("ownerReferences") or ():
        if ref.get("controller"):
            return [f"uid:{ref.get('uid') or ''}"]
    return [f"orphan:{md.get('namespace') or ''}"]


_PHASE_RANK = {"Pending": 0, "Unknown": 1, "Running": 2}


def slow_start_batches(count: int, initial: int = 1) -> list[int]:
    """Batch sizes 1, 2, 4, ... summing to count."""
    batches: list[int] = []
    size = initial
    remaining = count
    while remaining > 0:
        batch = min(size, remaining)
        batches.append(batch)
        remaining -= batch
        size *= 2
    return batches


def _restarts(pod: Obj) -> int:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return sum(int(s.get("restartCount") or 0) for s in statuses)


def _created(pod: Obj) -> float:
    stamp = meta(pod).get("creationTimestamp")
    return parse_timestamp(stamp).timestamp() if stamp else 0.0


def deletion_rank(pod: Obj) -> tuple[float, ...]:
    """Sort key: pods that sort first are deleted first.

    Unscheduled before scheduled, Pending before Unknown before Running, not
    ready before ready, ready for less time before ready for longer, more
    restarts before fewer, newer before older.
    """
    status = pod.get("status") or {}
    scheduled = 1 if (pod.get("spec") or {}).get("nodeName") else 0
    phase = _PHASE_RANK.get(status.get("phase", "Pending"), 0)
    ready = 1 if is_pod_ready(pod) else 0
    since = ready_since(pod)
    ready_for = -since.timestamp() if (ready and since) else 0.0
    return (scheduled, phase, ready, ready_for, -_restarts(pod), -_created(pod))


def pods_to_delete(pods: list[Obj], count: int) -> list[Obj]:
    return sorted(pods, key=deletion_rank)[:count]


def replica_set_status(rs: Obj, pods: list[Obj], now: datetime) -> Obj:
    """Status from the active pods the ReplicaSet controls."""
    template_labels = _template_labels(rs)
    min_ready = int_field(rs, "spec", "minReadySeconds")
    fully = sum(1 for p in pods if _fully_labeled(p, template_labels))
    return status_from_counts(
        rs,
        replicas=len(pods),
        fully_labeled=fully,
        ready=sum(1 for p in pods if is_pod_ready(p)),
        available=sum(1 for p in pods if is_pod_available(p, min_ready, now)),
    )


def status_from_counts(
    rs: Obj, *, replicas: int, fully_labeled: int, ready: int, available: int
) -> Obj:
    status = dict(rs.get("status") or {})
    status.update(
        replicas=replicas,
        fullyLabeledReplicas=fully_labeled,
        readyReplicas=ready,
        availableReplicas=available,
        observedGeneration=int_field(rs, "metadata", "generation", default=1),
    )
    return status


def _template_labels(rs: Obj) -> dict[str, str]:
    template = (rs.get("spec") or {}).get("template") or {}
    return (template.get("metadata") or {}).get("labels") or {}


def _fully_labeled(pod: Obj, template_labels: dict[str, str]) -> bool:
    labels = meta(pod).get("labels") or {}
    return all(labels.get(k) == v for k, v in template_labels.items())


def pod_view(pod: Obj) -> tuple[object, ...]:
    """Everything of a pod the ReplicaSet controller judges it by: a pod
    update that leaves this alone (a bind, a container's restart count, an
    IP) does not wake the ReplicaSet. The deletion ranking reads more, but
    from the cache at the time it deletes."""
    md = pod.get("metadata") or {}
    status = pod.get("status") or {}
    ready: Obj = {}
    for cond in status.get("conditions") or ():
        if cond.get("type") == "Ready":
            ready = cond
            break
    return (
        md.get("labels"),
        md.get("ownerReferences"),
        md.get("deletionTimestamp"),
        status.get("phase"),
        ready.get("status"),
        ready.get("lastTransitionTime"),
    )


@dataclass
class PodTally:
    """The pods a ReplicaSet's last sync counted as its own, with what it
    counted them as, so the next sync re-judges only the pods whose events
    came since (``dirty``) instead of all of them: with a sync per pod
    event, walking ~800 pods each time was 15 % of a scheduling burst.

    Valid while the ReplicaSet's ``signature`` (what a pod's judgement
    depends on) stays the same; a new one starts over from the index."""

    signature: tuple[object, ...]
    members: dict[str, tuple[bool, bool, datetime | None]] = field(default_factory=dict)
    dirty: set[str] = field(default_factory=set)
    fully_labeled: int = 0
    ready: int = 0

    def put(self, key: str, pod: Obj, template_labels: dict[str, str], min_ready: int) -> None:
        self.drop(key)
        ready = is_pod_ready(pod)
        since = ready_since(pod) if ready and min_ready > 0 else None
        fully = _fully_labeled(pod, template_labels)
        self.members[key] = (fully, ready, since)
        self.fully_labeled += fully
        self.ready += ready

    def drop(self, key: str) -> None:
        facts = self.members.pop(key, None)
        if facts is not None:
            self.fully_labeled -= facts[0]
            self.ready -= facts[1]

    def available(self, min_ready: int, now: datetime) -> int:
        if min_ready <= 0:
            return self.ready
        return sum(
            1
            for _, ready, since in self.members.values()
            if ready and since is not None and (now - since).total_seconds() >= min_ready
        )


def tally_signature(rs: Obj) -> tuple[object, ...]:
    spec = rs.get("spec") or {}
    return (
        meta(rs).get("uid"),
        is_deleting(rs),
        spec.get("selector"),
        _template_labels(rs),
        int_field(rs, "spec", "minReadySeconds"),
    )


def _without_status(rs: Obj) -> Obj:
    md = dict(meta(rs), resourceVersion=None, managedFields=None)
    return dict(rs, metadata=md, status=None)


def pod_from_template(rs: Obj) -> Obj:
    template = copy.deepcopy((rs.get("spec") or {}).get("template") or {})
    tmeta = template.get("metadata") or {}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": f"{meta(rs)['name']}-",
            "namespace": namespace_of(rs),
            "labels": tmeta.get("labels") or {},
            "annotations": tmeta.get("annotations") or {},
            "ownerReferences": [make_controller_ref(rs, "apps/v1", "ReplicaSet")],
        },
        "spec": template.get("spec") or {},
    }


class ReplicaSetController(Controller):
    name = "replicaset-controller"

    def __init__(
        self,
        client: ApiClient,
        informers: SharedInformers,
        recorder: EventRecorder,
        *,
        clock: Clock | None = None,
        workers: int = CONCURRENT_SYNCS,
    ) -> None:
        super().__init__(clock=clock, workers=workers)
        self.client = client
        self.recorder = recorder
        self.expectations = Expectations(self.clock)
        self.rs_informer = informers.index(REPLICASETS, "namespace", by_namespace)
        self.pod_informer = informers.index(PODS, "namespace", by_namespace)
        informers.index(PODS, CONTROLLER_INDEX, by_controller)
        self.watches(self.rs_informer, self.pod_informer)
        self.rs_informer.add_handler(
            on_add=self._rs_changed, on_update=self._rs_updated, on_delete=self._rs_deleted
        )
        self.pod_informer.add_handler(
            on_add=self._pod_added, on_update=self._pod_updated, on_delete=self._pod_deleted
        )
        self._tallies: dict[str, PodTally] = {}
        # The status each ReplicaSet's last write sent: its echo from the
        # watch needs no sync (it would find the same status again).
        self._sent: dict[str, Obj] = {}

    # -- event handlers: enqueue only -------------------------------------

    def _rs_changed(self, rs: Obj) -> None:
        self.queue.add(key_of(rs))

    def _rs_updated(self, old: Obj, new: Obj) -> None:
        key = key_of(new)
        sent = self._sent.get(key)
        if (
            sent is not None
            and new.get("status") == sent
            and _without_status(old) == _without_status(new)
        ):
            del self._sent[key]
            return
        self.queue.add(key)

    def _rs_deleted(self, rs: Obj) -> None:
        key = key_of(rs)
        self.expectations.forget(key)
        self._tallies.pop(key, None)
        self._sent.pop(key, None)
        self.queue.add(key)

    def _owner_key(self, pod: Obj) -> str | None:
        ref = controller_ref(pod)
        if ref is None or ref.get("kind") != "ReplicaSet":
            return None
        key = f"{namespace_of(pod)}/{ref.get('name')}"
        rs = self.rs_informer.cache.get(key)
        if rs is None or meta(rs).get("uid") != ref.get("uid"):
            return None
        return key

    def _matching_rs_keys(self, pod: Obj) -> list[str]:
        labels = meta(pod).get("labels")
        return [
            key_of(rs)
            for rs in self.rs_informer.cache.by_index("namespace", namespace_of(pod))
            if matches_selector((rs.get("spec") or {}).get("selector"), labels)
        ]

    def _touch(self, key: str, pod: Obj) -> None:
        """The owner's next sync must look at this pod again."""
        tally = self._tallies.get(key)
        if tally is not None:
            tally.dirty.add(key_of(pod))
        self.queue.add(key)

    def _pod_added(self, pod: Obj) -> None:
        if is_deleting(pod):
            self._pod_deleted(pod)
            return
        key = self._owner_key(pod)
        if key is not None:
            self.expectations.creation_observed(key)
            self._touch(key, pod)
        elif controller_ref(pod) is None:
            for rs_key in self._matching_rs_keys(pod):
                self._touch(rs_key, pod)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        if pod_view(old) == pod_view(new):
            return
        if is_deleting(new) and not is_deleting(old):
            key = self._owner_key(new)
            if key is not None:
                self.expectations.deletion_observed(key, key_of(new))
        for pod in (old, new):
            key = self._owner_key(pod)
            if key is not None:
                self._touch(key, pod)
            elif controller_ref(pod) is None:
                for rs_key in self._matching_rs_keys(pod):
                    self._touch(rs_key, pod)

    def _pod_deleted(self, pod: Obj) -> None:
        key = self._owner_key(pod)
        if key is not None:
            self.expectations.deletion_observed(key, key_of(pod))
            self._touch(key, pod)

    # -- reconcile ---------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        rs = self.rs_informer.cache.get(key)
        if rs is None:
            self.expectations.forget(key)
            self._tallies.pop(key, None)
            self._sent.pop(key, None)
            return None
        # Only the echo of a write this sync makes may pass unlooked-at.
        self._sent.pop(key, None)
        needs_sync = self.expectations.satisfied(key)
        tally = await self._claim_pods(key, rs)
        if needs_sync and not is_deleting(rs):
            await self._manage_replicas(key, rs, tally)
        min_ready = int_field(rs, "spec", "minReadySeconds")
        status = status_from_counts(
            rs,
            replicas=len(tally.members),
            fully_labeled=tally.fully_labeled,
            ready=tally.ready,
            available=tally.available(min_ready, self.clock.now()),
        )
        if status != (rs.get("status") or {}):
            self._sent[key] = status
            try:
                await self.client.replace_status(REPLICASETS, dict(rs, status=status))
            except BaseException:
                self._sent.pop(key, None)
                raise
        if min_ready > 0 and status["readyReplicas"] != status["availableReplicas"]:
            return float(min_ready)
        return None

    async def _claim_pods(self, key: str, rs: Obj) -> PodTally:
        """Adopt and release, and count the pods the ReplicaSet then owns.

        Only pods with events since the last sync are judged again: its own
        and the orphans its selector picks (an orphan it did not adopt
        before is adopted once it changes). A pod already counted and
        unchanged stays counted; so, with a sync per pod event, the cost
        per event does not grow with the ReplicaSet's size or with the
        namespace's plain pods."""
        signature = tally_signature(rs)
        uid = meta(rs).get("uid") or ""
        ns = namespace_of(rs)
        cache = self.pod_informer.cache
        tally = self._tallies.get(key)
        if tally is None or tally.signature != signature:
            tally = self._tallies[key] = PodTally(signature)
            keys: set[str] | list[str] = cache.index_keys(
                CONTROLLER_INDEX, f"uid:{uid}"
            ) + cache.index_keys(CONTROLLER_INDEX, f"orphan:{ns}")
        else:
            keys, tally.dirty = tally.dirty, set()
        candidates: list[Obj] = []
        for pod_key in keys:
            tally.drop(pod_key)
            pod = cache.get(pod_key)
            if pod is None or not is_pod_active(pod):
                continue
            ref = controller_ref(pod)
            if (ref.get("uid") == uid) if ref is not None else namespace_of(pod) == ns:
                candidates.append(pod)
        candidates.sort(key=key_of)
        try:
            claimed = await claim(self.client, PODS, rs, REPLICASETS, candidates)
        except BaseException:
            self._tallies.pop(key, None)  # counted pods were dropped: start over
            raise
        labels, min_ready = _template_labels(rs), int_field(rs, "spec", "minReadySeconds")
        for pod in claimed:
            tally.put(key_of(pod), pod, labels, min_ready)
        return tally

    async def _manage_replicas(self, key: str, rs: Obj, tally: PodTally) -> None:
        desired = int_field(rs, "spec", "replicas", default=1)
        diff = len(tally.members) - desired
        if diff < 0:
            await self._create_pods(key, rs, min(-diff, BURST_REPLICAS))
        elif diff > 0:
            cache = self.pod_informer.cache
            pods = [p for k in sorted(tally.members) if (p := cache.get(k)) is not None]
            await self._delete_pods(key, rs, pods_to_delete(pods, min(diff, BURST_REPLICAS)))

    async def _create_pods(self, key: str, rs: Obj, count: int) -> None:
        self.expectations.expect_creations(key, count)
        template = pod_from_template(rs)
        remaining = count
        for batch in slow_start_batches(count):
            results = await asyncio.gather(
                *(self._create_one(rs, template) for _ in range(batch)), return_exceptions=True
            )
            remaining -= batch
            failed = [r for r in results if isinstance(r, BaseException)]
            if failed:
                # Neither the failures nor the skipped batches will show up
                # in the informer; stop waiting for them.
                self.expectations.creation_observed(key, len(failed) + remaining)
                raise failed[0]

    async def _create_one(self, rs: Obj, template: Obj) -> Obj:
        try:
            # Only the generated name is used: the rest reaches the cache by the watch.
            pod = await self.client.create(PODS, template, namespace_of(rs), full=False)
        except ApiError as exc:
            self.recorder.record(rs, "Warning", "FailedCreate", f"Error creating: {exc.message}")
            raise
        self.recorder.record(
            rs, "Normal", "SuccessfulCreate", f"Created pod: {meta(pod).get('name')}"
        )
        return pod

    async def _delete_pods(self, key: str, rs: Obj, victims: list[Obj]) -> None:
        self.expectations.expect_deletions(key, [key_of(p) for p in victims])

        async def delete(pod: Obj) -> None:
            name = meta(pod)["name"]
            try:
                await self.client.delete(PODS, name, namespace_of(pod))
            except NotFoundError:
                self.expectations.deletion_observed(key, key_of(pod))
                return
            except ApiError as exc:
                self.expectations.deletion_observed(key, key_of(pod))
                self.recorder.record(
                    rs, "Warning", "FailedDelete", f"Error deleting: {exc.message}"
                )
                raise
            self.recorder.record(rs, "Normal", "SuccessfulDelete", f"Deleted pod: {name}")

        results = await asyncio.gather(*(delete(p) for p in victims), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
