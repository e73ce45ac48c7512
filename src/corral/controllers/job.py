"""The Job controller: run pods until enough succeed, within limits.

Level-triggered: each reconcile recounts the job's pods (the rules are in
:mod:`job_logic`), decides whether the job is complete or failed, starts or
removes pods to match parallelism (waiting out the back-off after a
failure), and writes status. Finished jobs are deleted once their
ttlSecondsAfterFinished has passed.
"""

from __future__ import annotations

import copy
import logging

from corral.client.api import ApiClient
from corral.client.errors import ApiError, NotFoundError
from corral.client.events import EventRecorder
from corral.client.resources import JOBS, PODS
from corral.clock import Clock, format_timestamp, parse_timestamp
from corral.controllers import job_logic as jl
from corral.controllers.base import Controller
from corral.controllers.expectations import Expectations
from corral.controllers.informers import SharedInformers, by_namespace, by_owner_uid
from corral.controllers.objects import (
    Obj,
    controller_ref,
    is_deleting,
    key_of,
    make_controller_ref,
    meta,
    namespace_of,
)
from corral.controllers.ownership import queue_owners_of_pods

log = logging.getLogger(__name__)


def pod_for(job: Obj, index: int | None) -> Obj:
    """A pod from the job's template; an Indexed job's pod carries its index
    as annotation, label, hostname and the JOB_COMPLETION_INDEX variable."""
    template = copy.deepcopy((job.get("spec") or {}).get("template") or {})
    tmeta = template.get("metadata") or {}
    spec = template.get("spec") or {}
    name = meta(job)["name"]
    labels = dict(tmeta.get("labels") or {})
    annotations = dict(tmeta.get("annotations") or {})
    generate = f"{name}-"
    if index is not None:
        labels[jl.INDEX_LABEL] = str(index)
        annotations[jl.INDEX_ANNOTATION] = str(index)
        generate = f"{name}-{index}-"
        spec.setdefault("hostname", f"{name}-{index}"[:63].rstrip("-"))
        env_var = {"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {
            "fieldPath": f"metadata.annotations['{jl.INDEX_ANNOTATION}']"}}}
        for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
            env = c.setdefault("env", [])
            if not any(e.get("name") == "JOB_COMPLETION_INDEX" for e in env):
                env.append(env_var)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": generate,
            "namespace": namespace_of(job),
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [make_controller_ref(job, "batch/v1", "Job")],
        },
        "spec": spec,
    }


def _set_condition(status: Obj, type_: str, value: str, reason: str, message: str, now: str) -> bool:
    conds = status.setdefault("conditions", [])
    for cond in conds:
        if cond.get("type") == type_:
            if cond.get("status") == value and cond.get("reason") == reason:
                return False
            cond.update(status=value, reason=reason, message=message, lastProbeTime=now,
                        lastTransitionTime=now)
            return True
    conds.append({"type": type_, "status": value, "reason": reason, "message": message,
                  "lastProbeTime": now, "lastTransitionTime": now})
    return True


class JobController(Controller):
    name = "job-controller"

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
        self.expectations = Expectations(self.clock)
        self.jobs = informers.index(JOBS, "namespace", by_namespace)
        self.pods = informers.index(PODS, "owner-uid", by_owner_uid)
        self.watches(self.jobs, self.pods)
        self.jobs.add_handler(on_add=self._enqueue, on_update=lambda o, n: self._enqueue(n),
                              on_delete=self._job_deleted)
        queue_owners_of_pods(self.pods, "Job", self.queue, self.expectations)

    def _enqueue(self, job: Obj) -> None:
        self.queue.add(key_of(job))

    def _job_deleted(self, job: Obj) -> None:
        self.expectations.forget(key_of(job))

    # -- reconcile ---------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        job = self.jobs.cache.get(key)
        if job is None or is_deleting(job):
            return None
        job = copy.deepcopy(job)
        if jl.is_finished(job):
            return await self._after_finish(job)
        uid = meta(job).get("uid", "")
        pods = [p for p in self.pods.cache.by_index("owner-uid", uid)
                if (controller_ref(p) or {}).get("uid") == uid]
        view = jl.view_of(job, pods)
        now = self.clock.now()
        stamp = format_timestamp(now)
        status = copy.deepcopy(job.get("status") or {})
        suspended = bool((job.get("spec") or {}).get("suspend"))
        again: float | None = None
        if suspended:
            await self._delete_pods(job, view.active, "suspended")
            view.active = []
            if _set_condition(status, "Suspended", "True", "JobSuspended", "Job suspended", stamp):
                self.recorder.record(job, "Normal", "Suspended", "Job suspended")
                status.pop("startTime", None)
        else:
            if any(c.get("type") == "Suspended" and c.get("status") == "True"
                   for c in status.get("conditions") or []):
                _set_condition(status, "Suspended", "False", "JobResumed", "Job resumed", stamp)
                self.recorder.record(job, "Normal", "Resumed", "Job resumed")
            status.setdefault("startTime", stamp)
            job["status"] = status
            again = await self._progress(job, view, status, stamp)
        self._fill_counts(job, view, status)
        if status != (job.get("status") or {}) or status != (self.jobs.cache.get(key) or {}).get("status"):
            await self.client.replace_status(JOBS, dict(job, status=status))
        if jl.is_finished({"status": status}):
            return await self._after_finish(dict(job, status=status))
        return again

    async def _progress(self, job: Obj, view: jl.JobView, status: Obj, stamp: str) -> float | None:
        now = parse_timestamp(stamp)
        if jl.is_complete(job, view):
            await self._delete_pods(job, view.active, "completed")
            view.active = []
            _set_condition(status, "Complete", "True", "", "", stamp)
            status["completionTime"] = stamp
            self.recorder.record(job, "Normal", "Completed", "Job completed")
            return None
        failure = jl.failure_reason(job, view, now)
        if failure is not None:
            reason, message = failure
            await self._delete_pods(job, view.active, "failed")
            view.active = []
            _set_condition(status, "Failed", "True", reason, message, stamp)
            self.recorder.record(job, "Warning", reason, message)
            return None
        await self._manage(job, view, now)
        left = jl.deadline_left(job, now)
        return left + 0.5 if left is not None else None

    async def _manage(self, job: Obj, view: jl.JobView, now) -> float | None:
        key = key_of(job)
        if not self.expectations.satisfied(key):
            return None
        wanted = jl.wanted_active(job, view)
        extra = jl.active_to_delete(job, view, wanted)
        if extra:
            await self._delete_pods(job, extra, "too many")
            return None
        missing = wanted - len(view.active)
        if missing <= 0:
            return None
        wait = jl.backoff_left(view, now)
        if wait > 0:
            self.queue.add_after(key, wait)
            return wait
        if jl.is_indexed(job):
            indexes: list[int | None] = list(jl.indexes_to_start(job, view, missing))
        else:
            indexes = [None] * missing
        await self._create(job, indexes)
        return None

    async def _create(self, job: Obj, indexes: list[int | None]) -> None:
        key = key_of(job)
        self.expectations.expect_creations(key, len(indexes))
        for i, index in enumerate(indexes):
            try:
                pod = await self.client.create(PODS, pod_for(job, index), namespace_of(job))
            except ApiError as exc:
                self.expectations.creation_observed(key, len(indexes) - i)
                self.recorder.record(job, "Warning", "FailedCreate", f"Error creating: {exc.message}")
                raise
            self.recorder.record(job, "Normal", "SuccessfulCreate", f"Created pod: {meta(pod)['name']}")

    async def _delete_pods(self, job: Obj, pods: list[Obj], why: str) -> None:
        for pod in pods:
            try:
                await self.client.delete(PODS, meta(pod)["name"], namespace_of(pod))
            except NotFoundError:
                continue
            self.recorder.record(job, "Normal", "SuccessfulDelete", f"Deleted pod: {meta(pod)['name']}")

    def _fill_counts(self, job: Obj, view: jl.JobView, status: Obj) -> None:
        status["active"] = len(view.active)
        status["ready"] = view.ready
        status["succeeded"] = view.succeeded
        status["failed"] = view.failed
        status["terminating"] = 0
        status.setdefault("uncountedTerminatedPods", {})
        if jl.is_indexed(job):
            status["completedIndexes"] = jl.format_indexes(view.completed_indexes)
        for name in ("active", "succeeded", "failed", "terminating"):
            if status[name] == 0:
                status.pop(name)
        status["observedGeneration"] = meta(job).get("generation", 1)

    async def _after_finish(self, job: Obj) -> float | None:
        ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
        if not isinstance(ttl, int):
            return None
        status = job.get("status") or {}
        finished = status.get("completionTime")
        if not finished:
            for cond in status.get("conditions") or []:
                if cond.get("type") in ("Complete", "Failed") and cond.get("status") == "True":
                    finished = cond.get("lastTransitionTime")
        if not finished:
            return None
        left = (parse_timestamp(finished) - self.clock.now()).total_seconds() + ttl
        if left > 0:
            return left
        try:
            await self.client.delete(JOBS, meta(job)["name"], namespace_of(job),
                                     propagation_policy="Foreground",
                                     preconditions={"uid": meta(job)["uid"]})
        except NotFoundError:
            pass
        return None
