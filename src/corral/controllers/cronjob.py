"""The CronJob controller: create a Job at each scheduled time.

Like Kubernetes' second CronJob controller: each reconcile looks at the
CronJob and the Jobs it owns, updates the active list and history, finds the
most recent scheduled time that has not run (missed runs are not replayed:
only the latest counts, and more than 100 missed starts earns an Event),
applies the concurrency policy and creates the Job, then asks to be looked
at again at the next scheduled time. Times come from the injectable clock.
"""

from __future__ import annotations

import copy
import logging
from datetime import datetime, timedelta

from corral.client.api import ApiClient
from corral.client.errors import AlreadyExistsError, NotFoundError
from corral.client.events import EventRecorder
from corral.client.resources import CRONJOBS, JOBS
from corral.clock import Clock, format_timestamp, parse_timestamp
from corral.controllers.base import Controller
from corral.controllers.informers import SharedInformers, by_namespace, by_owner_uid
from corral.controllers.job_logic import is_finished
from corral.controllers.objects import (
    Obj,
    controller_ref,
    int_field,
    is_deleting,
    key_of,
    make_controller_ref,
    meta,
    namespace_of,
)
from corral.cron import CronError, parse_schedule

log = logging.getLogger(__name__)

SCHEDULED_ANNOTATION = "batch.kubernetes.io/cronjob-scheduled-timestamp"
MISSED_LIMIT = 100


def job_name(cronjob: Obj, scheduled: datetime) -> str:
    """Deterministic per scheduled time, so a retried create cannot run twice."""
    return f"{meta(cronjob)['name']}-{int(scheduled.timestamp()) // 60}"


def job_from_template(cronjob: Obj, scheduled: datetime) -> Obj:
    template = copy.deepcopy((cronjob.get("spec") or {}).get("jobTemplate") or {})
    tmeta = template.get("metadata") or {}
    annotations = dict(tmeta.get("annotations") or {})
    annotations[SCHEDULED_ANNOTATION] = format_timestamp(scheduled)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(cronjob, scheduled),
            "namespace": namespace_of(cronjob),
            "labels": dict(tmeta.get("labels") or {}),
            "annotations": annotations,
            "ownerReferences": [make_controller_ref(cronjob, "batch/v1", "CronJob")],
        },
        "spec": template.get("spec") or {},
    }


def _ref(job: Obj) -> Obj:
    return {"apiVersion": "batch/v1", "kind": "Job", "name": meta(job)["name"],
            "namespace": namespace_of(job), "uid": meta(job).get("uid"),
            "resourceVersion": meta(job).get("resourceVersion")}


def _started(job: Obj) -> str:
    return (job.get("status") or {}).get("startTime") or meta(job).get("creationTimestamp") or ""


def history_to_delete(cronjob: Obj, children: list[Obj]) -> list[Obj]:
    """Finished jobs past successfulJobsHistoryLimit / failedJobsHistoryLimit, oldest first."""
    out: list[Obj] = []
    for state, field, default in (("Complete", "successfulJobsHistoryLimit", 3),
                                  ("Failed", "failedJobsHistoryLimit", 1)):
        limit = int_field(cronjob, "spec", field, default=default)
        done = sorted((j for j in children if is_finished(j) == state and not is_deleting(j)), key=_started)
        out += done[: max(0, len(done) - limit)]
    return out


class CronJobController(Controller):
    name = "cronjob-controller"

    def __init__(
        self,
        client: ApiClient,
        informers: SharedInformers,
        recorder: EventRecorder,
        *,
        clock: Clock | None = None,
        workers: int = 1,
    ) -> None:
        super().__init__(clock=clock, workers=workers)
        self.client = client
        self.recorder = recorder
        self.cronjobs = informers.index(CRONJOBS, "namespace", by_namespace)
        self.jobs = informers.index(JOBS, "owner-uid", by_owner_uid)
        self.watches(self.cronjobs, self.jobs)
        self.cronjobs.add_handler(on_add=self._enqueue, on_update=lambda o, n: self._enqueue(n))
        self.jobs.add_handler(on_add=self._job_changed, on_update=lambda o, n: self._job_changed(n),
                              on_delete=self._job_changed)

    def _enqueue(self, cronjob: Obj) -> None:
        self.queue.add(key_of(cronjob))

    def _job_changed(self, job: Obj) -> None:
        ref = controller_ref(job)
        if ref is not None and ref.get("kind") == "CronJob":
            self.queue.add(f"{namespace_of(job)}/{ref.get('name')}")

    async def reconcile(self, key: str) -> float | None:
        cronjob = self.cronjobs.cache.get(key)
        if cronjob is None or is_deleting(cronjob):
            return None
        cronjob = copy.deepcopy(cronjob)
        uid = meta(cronjob).get("uid", "")
        children = [j for j in self.jobs.cache.by_index("owner-uid", uid)
                    if (controller_ref(j) or {}).get("uid") == uid]
        status = copy.deepcopy(cronjob.get("status") or {})
        self._track_children(cronjob, children, status)
        for job in history_to_delete(cronjob, children):
            await self._delete_job(cronjob, job)
        again = None
        if not (cronjob.get("spec") or {}).get("suspend"):
            again = await self._maybe_start(cronjob, children, status)
        if status != (cronjob.get("status") or {}):
            await self.client.replace_status(CRONJOBS, dict(cronjob, status=status))
        return again

    def _track_children(self, cronjob: Obj, children: list[Obj], status: Obj) -> None:
        before = {a.get("uid") for a in status.get("active") or []}
        active = []
        for job in sorted(children, key=_started):
            state = is_finished(job)
            if state is None and not is_deleting(job):
                active.append(_ref(job))
                continue
            if meta(job).get("uid") in before and state is not None:
                self.recorder.record(cronjob, "Normal", "SawCompletedJob",
                                     f"Saw completed job: {meta(job)['name']}, status: {state}")
            done = (job.get("status") or {}).get("completionTime")
            if state == "Complete" and done and done > (status.get("lastSuccessfulTime") or ""):
                status["lastSuccessfulTime"] = done
        if active:
            status["active"] = active
        else:
            status.pop("active", None)

    async def _maybe_start(self, cronjob: Obj, children: list[Obj], status: Obj) -> float | None:
        spec = cronjob.get("spec") or {}
        try:
            schedule = parse_schedule(str(spec.get("schedule", "")), spec.get("timeZone"))
        except CronError as exc:
            self.recorder.record(cronjob, "Warning", "UnparseableSchedule",
                                 f"unparseable schedule: {spec.get('schedule')!r} : {exc}")
            return None
        now = self.clock.now()
        last = status.get("lastScheduleTime") or meta(cronjob).get("creationTimestamp")
        earliest = parse_timestamp(last) if last else now
        deadline = spec.get("startingDeadlineSeconds")
        if isinstance(deadline, int):
            earliest = max(earliest, now - timedelta(seconds=deadline))
        scheduled, missed = schedule.most_recent(earliest, now, MISSED_LIMIT)
        if missed > MISSED_LIMIT:
            self.recorder.record(cronjob, "Warning", "TooManyMissedTimes",
                                 "too many missed start times. Set or decrease "
                                 ".spec.startingDeadlineSeconds or check clock skew")
        nxt = schedule.next_after(now)
        again = (nxt - now).total_seconds() + 0.1 if nxt else None
        if scheduled is None:
            return again
        name = job_name(cronjob, scheduled)
        if any(meta(j)["name"] == name for j in children):
            return again
        active = [j for j in children if is_finished(j) is None and not is_deleting(j)]
        policy = spec.get("concurrencyPolicy", "Allow")
        if policy == "Forbid" and active:
            self.recorder.record(cronjob, "Normal", "JobAlreadyActive",
                                 "Not starting job because prior execution is running and "
                                 "concurrency policy is Forbid")
            return again
        if policy == "Replace":
            for job in active:
                await self._delete_job(cronjob, job)
            status.pop("active", None)
        try:
            job = await self.client.create(JOBS, job_from_template(cronjob, scheduled), namespace_of(cronjob))
        except AlreadyExistsError:
            return again
        self.recorder.record(cronjob, "Normal", "SuccessfulCreate", f"Created job {meta(job)['name']}")
        status.setdefault("active", []).append(_ref(job))
        status["lastScheduleTime"] = format_timestamp(scheduled)
        return again

    async def _delete_job(self, cronjob: Obj, job: Obj) -> None:
        try:
            await self.client.delete(JOBS, meta(job)["name"], namespace_of(job),
                                     propagation_policy="Background")
        except NotFoundError:
            return
        self.recorder.record(cronjob, "Normal", "SuccessfulDelete", f"Deleted job {meta(job)['name']}")
