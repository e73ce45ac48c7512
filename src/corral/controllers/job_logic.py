"""The Job controller's rules as pure functions over a Job and its pods.

Counting (succeeded/failed, completed indexes), the pod failure policy, the
back-off before a failed pod is replaced, deadlines and the decision of how
many pods (or which indexes) to start. The controller only reads caches and
writes what these return, so every rule is unit-tested on hand-made dicts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from corral.clock import parse_timestamp
from corral.controllers.objects import Obj, int_field, is_deleting, meta

INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
INDEX_LABEL = "batch.kubernetes.io/job-completion-index"
BACKOFF_BASE = 10.0
BACKOFF_MAX = 360.0


def phase(pod: Obj) -> str:
    return (pod.get("status") or {}).get("phase") or "Pending"


def is_finished(job: Obj) -> str | None:
    """"Complete" or "Failed" once the job has that condition, else None."""
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") in ("Complete", "Failed") and cond.get("status") == "True":
            return str(cond["type"])
    return None


def is_indexed(job: Obj) -> bool:
    return (job.get("spec") or {}).get("completionMode") == "Indexed"


def pod_index(pod: Obj) -> int | None:
    value = (meta(pod).get("annotations") or {}).get(INDEX_ANNOTATION)
    if value is None:
        value = (meta(pod).get("labels") or {}).get(INDEX_LABEL)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


# -- index sets as Kubernetes prints them ("1,3-5") ----------------------------


def format_indexes(indexes: set[int]) -> str:
    out: list[str] = []
    ordered = sorted(indexes)
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        out.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(out)


def parse_indexes(text: str | None, limit: int) -> set[int]:
    found: set[int] = set()
    for part in (text or "").split(","):
        if not part:
            continue
        a, _, b = part.partition("-")
        try:
            low, high = int(a), int(b or a)
        except ValueError:
            continue
        found.update(i for i in range(low, high + 1) if 0 <= i < limit)
    return found


# -- pod failure policy -----------------------------------------------------------


def _exit_codes(pod: Obj, container: str | None) -> list[tuple[str, int]]:
    out = []
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if container and status.get("name") != container:
            continue
        term = (status.get("state") or {}).get("terminated") or {}
        code = term.get("exitCode")
        if isinstance(code, int):
            out.append((str(status.get("name", "")), code))
    return out


def _rule_matches(rule: Obj, pod: Obj) -> str | None:
    """A description of what matched, or None."""
    on_codes = rule.get("onExitCodes")
    if isinstance(on_codes, dict):
        values = set(on_codes.get("values") or [])
        op = on_codes.get("operator")
        for name, code in _exit_codes(pod, on_codes.get("containerName")):
            if code == 0:
                continue
            if (op == "In" and code in values) or (op == "NotIn" and code not in values):
                return f"Container {name} for pod {meta(pod).get('namespace')}/{meta(pod).get('name')} " \
                       f"failed with exit code {code}"
    for pattern in rule.get("onPodConditions") or []:
        for cond in (pod.get("status") or {}).get("conditions") or []:
            if cond.get("type") == pattern.get("type") and cond.get("status") == pattern.get("status", "True"):
                return f"Pod {meta(pod).get('namespace')}/{meta(pod).get('name')} has condition " \
                       f"{cond.get('type')}"
    return None


def failure_action(job: Obj, pod: Obj) -> tuple[str, str]:
    """(action, message) for a failed pod: the first matching rule's action,
    else ("Count", "")."""
    policy = (job.get("spec") or {}).get("podFailurePolicy") or {}
    for i, rule in enumerate(policy.get("rules") or []):
        matched = _rule_matches(rule, pod)
        if matched is not None:
            action = str(rule.get("action", "Count"))
            return action, f"{matched} matching {action} rule at index {i}"
    return "Count", ""


# -- the picture of one job ----------------------------------------------------------


@dataclass
class JobView:
    active: list[Obj] = field(default_factory=list)
    succeeded: int = 0
    failed: int = 0
    ready: int = 0
    completed_indexes: set[int] = field(default_factory=set)
    fail_job: str | None = None  # message when a FailJob rule matched
    last_failure: datetime | None = None


def _finished_at(pod: Obj) -> datetime | None:
    latest = None
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        stamp = ((status.get("state") or {}).get("terminated") or {}).get("finishedAt")
        if stamp:
            t = parse_timestamp(stamp)
            latest = t if latest is None or t > latest else latest
    if latest is None:
        stamp = meta(pod).get("deletionTimestamp") or meta(pod).get("creationTimestamp")
        latest = parse_timestamp(stamp) if stamp else None
    return latest


def _restarts(pod: Obj) -> int:
    return sum(int(s.get("restartCount") or 0)
               for s in (pod.get("status") or {}).get("containerStatuses") or [])


def view_of(job: Obj, pods: list[Obj]) -> JobView:
    """Counts from the pods, never lower than what status already recorded
    (a finished pod someone deleted still counted once)."""
    view = JobView()
    status = job.get("status") or {}
    completions = int_field(job, "spec", "completions", default=0)
    on_failure = ((job.get("spec") or {}).get("template") or {}).get("spec", {}).get("restartPolicy") == "OnFailure"
    succeeded = failed = restarts = 0
    for pod in pods:
        p = phase(pod)
        if p == "Succeeded":
            succeeded += 1
            idx = pod_index(pod)
            if idx is not None and 0 <= idx < completions:
                view.completed_indexes.add(idx)
        elif p == "Failed":
            action, message = failure_action(job, pod)
            if action == "FailJob" and view.fail_job is None:
                view.fail_job = message
            if action == "Ignore":
                continue
            failed += 1
            when = _finished_at(pod)
            if when and (view.last_failure is None or when > view.last_failure):
                view.last_failure = when
        elif not is_deleting(pod):
            view.active.append(pod)
            restarts += _restarts(pod) if on_failure else 0
            if any(c.get("type") == "Ready" and c.get("status") == "True"
                   for c in (pod.get("status") or {}).get("conditions") or []):
                view.ready += 1
    if is_indexed(job):
        view.completed_indexes |= parse_indexes(status.get("completedIndexes"), completions)
        succeeded = max(succeeded, len(view.completed_indexes))
    view.succeeded = max(succeeded, int(status.get("succeeded") or 0))
    view.failed = max(failed + restarts, int(status.get("failed") or 0))
    return view


def is_complete(job: Obj, view: JobView) -> bool:
    spec = job.get("spec") or {}
    completions = spec.get("completions")
    if is_indexed(job):
        return len(view.completed_indexes) >= int(completions or 0)
    if completions is None:
        return view.succeeded > 0 and not view.active
    return view.succeeded >= int(completions)


def failure_reason(job: Obj, view: JobView, now: datetime) -> tuple[str, str] | None:
    """(reason, message) if the job has failed."""
    if view.fail_job is not None:
        return "PodFailurePolicy", view.fail_job
    limit = int_field(job, "spec", "backoffLimit", default=6)
    if view.failed > limit:
        return "BackoffLimitExceeded", "Job has reached the specified backoff limit"
    left = deadline_left(job, now)
    if left is not None and left <= 0:
        return "DeadlineExceeded", "Job was active longer than specified deadline"
    return None


def deadline_left(job: Obj, now: datetime) -> float | None:
    deadline = (job.get("spec") or {}).get("activeDeadlineSeconds")
    start = (job.get("status") or {}).get("startTime")
    if not isinstance(deadline, int) or not start:
        return None
    return (parse_timestamp(start) + timedelta(seconds=deadline) - now).total_seconds()


def backoff_left(view: JobView, now: datetime) -> float:
    """Seconds before a failed pod may be replaced: 10 s doubling per
    failure, capped at 6 minutes, from the latest failure."""
    if view.failed <= 0 or view.last_failure is None:
        return 0.0
    delay = min(BACKOFF_BASE * 2 ** (view.failed - 1), BACKOFF_MAX)
    return max(0.0, (view.last_failure + timedelta(seconds=delay) - now).total_seconds())


def wanted_active(job: Obj, view: JobView) -> int:
    spec = job.get("spec") or {}
    parallelism = int_field(job, "spec", "parallelism", default=1)
    completions = spec.get("completions")
    if completions is None:
        return 0 if view.succeeded > 0 else parallelism
    remaining = max(0, int(completions) - view.succeeded)
    if is_indexed(job):
        remaining = max(0, int(completions) - len(view.completed_indexes))
    return min(parallelism, remaining)


def indexes_to_start(job: Obj, view: JobView, count: int) -> list[int]:
    """Lowest indexes neither completed nor running."""
    completions = int_field(job, "spec", "completions", default=0)
    running = {pod_index(p) for p in view.active}
    out = []
    for i in range(completions):
        if len(out) >= count:
            break
        if i not in view.completed_indexes and i not in running:
            out.append(i)
    return out


def active_to_delete(job: Obj, view: JobView, wanted: int) -> list[Obj]:
    """Extra active pods, not-ready and newest first (and duplicates of an index)."""
    pods = list(view.active)
    extra: list[Obj] = []
    if is_indexed(job):
        seen: set[int | None] = set()
        keep = []
        for pod in sorted(pods, key=lambda p: meta(p).get("creationTimestamp") or ""):
            idx = pod_index(pod)
            if idx in seen or idx in view.completed_indexes:
                extra.append(pod)
            else:
                seen.add(idx)
                keep.append(pod)
        pods = keep
    surplus = len(pods) - wanted
    if surplus > 0:
        ranked = sorted(pods, key=lambda p: (phase(p) == "Running", meta(p).get("creationTimestamp") or ""),
                        reverse=False)
        extra += ranked[:surplus]
    return extra
