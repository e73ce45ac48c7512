"""batch/v1: Job and CronJob: defaults, validation with Kubernetes'
messages, and the columns ``kubectl get jobs|cronjobs`` prints."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from corral.cron import CronError, load_zone, parse_schedule
from corral.resources import validation as v
from corral.resources.podspec import default_pod_template, validate_pod_spec
from corral.resources.schema import Schema
from corral.resources.tables import (
    AGE_COLUMN,
    NAME_COLUMN,
    age_since,
    as_dict,
    as_list,
    containers_cell,
    get_path,
    human_duration,
    images_cell,
    parse_time,
    selector_column,
)
from corral.resources.types import Column, FieldCause, Obj, ResourceType

CONTROLLER_UID = "batch.kubernetes.io/controller-uid"
LEGACY_CONTROLLER_UID = "controller-uid"
JOB_NAME = "batch.kubernetes.io/job-name"
LEGACY_JOB_NAME = "job-name"
COMPLETION_MODES = ("NonIndexed", "Indexed")
CONCURRENCY = ("Allow", "Forbid", "Replace")
FAILURE_ACTIONS = ("FailJob", "FailIndex", "Ignore", "Count")
MAX_INT32 = 2**31 - 1

# --- defaults ---------------------------------------------------------------------


def default_job_spec(spec: Any) -> None:
    if not isinstance(spec, dict):
        return
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
        spec["parallelism"] = 1
    spec.setdefault("parallelism", 1)
    spec.setdefault("backoffLimit", MAX_INT32 if spec.get("backoffLimitPerIndex") is not None else 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("podReplacementPolicy",
                    "Failed" if spec.get("podFailurePolicy") is not None else "TerminatingOrFailed")
    for rule in as_list(get_path(spec, "podFailurePolicy", "rules")):
        for pattern in as_list(as_dict(rule).get("onPodConditions")):
            if isinstance(pattern, dict):
                pattern.setdefault("status", "True")
    default_pod_template(spec.get("template"))


def default_job(obj: Obj) -> None:
    """Besides Kubernetes' field defaults, a Job without manualSelector gets
    the selector Kubernetes generates from its uid, and its template the
    matching labels, so its pods can never be claimed by another Job."""
    spec = obj.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    default_job_spec(spec)
    meta = as_dict(obj.get("metadata"))
    uid, name = meta.get("uid"), meta.get("name")
    if spec.get("manualSelector") or not uid or spec.get("selector") is not None:
        return
    spec["selector"] = {"matchLabels": {CONTROLLER_UID: uid}}
    template = spec.get("template")
    if isinstance(template, dict):
        tmeta = template.setdefault("metadata", {})
        labels = tmeta.setdefault("labels", {}) if isinstance(tmeta, dict) else None
        if isinstance(labels, dict):
            labels.update({CONTROLLER_UID: uid, LEGACY_CONTROLLER_UID: uid})
            if name:
                labels.update({JOB_NAME: name, LEGACY_JOB_NAME: name})


def default_cronjob(obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    spec.setdefault("concurrencyPolicy", "Allow")
    spec.setdefault("suspend", False)
    spec.setdefault("successfulJobsHistoryLimit", 3)
    spec.setdefault("failedJobsHistoryLimit", 1)
    job_spec = get_path(spec, "jobTemplate", "spec")
    if isinstance(job_spec, dict):
        default_pod_template(job_spec.get("template"))


# --- validation -------------------------------------------------------------------


def _validate_failure_policy(policy: Any, path: str, restart: Any) -> list[FieldCause]:
    if policy is None:
        return []
    causes: list[FieldCause] = []
    if restart != "Never":
        causes.append(v.invalid("spec.template.spec.restartPolicy", restart,
                                'only "Never" is supported when podFailurePolicy is specified'))
    for i, rule in enumerate(as_list(as_dict(policy).get("rules"))):
        p = f"{path}.rules[{i}]"
        rule = as_dict(rule)
        causes += v.one_of(f"{p}.action", rule.get("action"), FAILURE_ACTIONS)
        codes, conds = rule.get("onExitCodes"), rule.get("onPodConditions")
        if codes is None and conds is None:
            causes.append(v.invalid(p, "", "specifying one of OnExitCodes and OnPodConditions is required"))
        if codes is not None and conds is not None:
            causes.append(v.invalid(p, "", "specifying both OnExitCodes and OnPodConditions is not supported"))
        if isinstance(codes, dict):
            causes += v.one_of(f"{p}.onExitCodes.operator", codes.get("operator"), ("In", "NotIn"))
            values = codes.get("values")
            if not values:
                causes.append(v.required(f"{p}.onExitCodes.values", "at least one value is required"))
            for j, value in enumerate(as_list(values)):
                if not v.is_int(value):
                    causes.append(v.invalid(f"{p}.onExitCodes.values[{j}]", value, "must be an integer"))
                elif value == 0 and codes.get("operator") == "In":
                    causes.append(v.invalid(f"{p}.onExitCodes.values[{j}]", 0,
                                            "must not be 0 for the In operator"))
    return causes


def validate_job_spec(spec: Any, path: str, *, generated_selector: bool) -> list[FieldCause]:
    if not isinstance(spec, dict):
        return [v.required(path)]
    causes: list[FieldCause] = []
    for name in ("parallelism", "completions", "activeDeadlineSeconds", "backoffLimit",
                 "ttlSecondsAfterFinished", "backoffLimitPerIndex", "maxFailedIndexes"):
        causes += v.non_negative(f"{path}.{name}", spec.get(name))
    mode = spec.get("completionMode")
    if mode is not None:
        causes += v.one_of(f"{path}.completionMode", mode, COMPLETION_MODES)
    if mode == "Indexed" and spec.get("completions") is None:
        causes.append(v.required(f"{path}.completions", "when completion mode is Indexed"))
    template = spec.get("template")
    if not isinstance(template, dict):
        return causes + [v.required(f"{path}.template")]
    tmeta = as_dict(template.get("metadata"))
    causes += v.validate_labels(tmeta.get("labels"), f"{path}.template.metadata.labels")
    causes += validate_pod_spec(template.get("spec"), f"{path}.template.spec", is_pod=False)
    restart = get_path(template, "spec", "restartPolicy")
    if restart not in ("OnFailure", "Never"):
        causes.append(v.not_supported(f"{path}.template.spec.restartPolicy", restart,
                                      ("OnFailure", "Never")))
    causes += _validate_failure_policy(spec.get("podFailurePolicy"), f"{path}.podFailurePolicy", restart)
    if not generated_selector:
        return causes
    selector = spec.get("selector")
    if selector is None:
        causes.append(v.required(f"{path}.selector"))
    else:
        causes += v.validate_label_selector(selector, f"{path}.selector")
        labels = as_dict(tmeta.get("labels"))
        if isinstance(selector, dict) and not v.selector_matches(selector, labels):
            causes.append(v.invalid(f"{path}.template.metadata.labels", labels,
                                    "`selector` does not match template `labels`"))
    return causes


def validate_job(new: Obj, old: Obj | None) -> list[FieldCause]:
    spec = new.get("spec")
    causes = validate_job_spec(spec, "spec", generated_selector=True)
    if old is None or not isinstance(spec, dict):
        return causes
    old_spec = as_dict(old.get("spec"))
    for name in ("selector", "completionMode", "podFailurePolicy", "manualSelector"):
        causes += v.immutable_field(f"spec.{name}", spec.get(name), old_spec.get(name))
    if spec.get("completions") != old_spec.get("completions") and not (
        spec.get("completionMode") == "Indexed" and spec.get("completions") == spec.get("parallelism")
    ):
        causes += v.immutable_field("spec.completions", spec.get("completions"), old_spec.get("completions"))
    if spec.get("template") != old_spec.get("template") and not (
        old_spec.get("suspend") and get_path(old, "status", "startTime") is None
    ):
        causes.append(v.invalid("spec.template", spec.get("template"), "field is immutable"))
    return causes


def validate_cronjob(new: Obj, old: Obj | None) -> list[FieldCause]:
    spec = new.get("spec")
    if not isinstance(spec, dict):
        return [v.required("spec")]
    causes: list[FieldCause] = []
    name = as_dict(new.get("metadata")).get("name")
    if isinstance(name, str) and len(name) > 52:
        causes.append(v.invalid("metadata.name", name, "must be no more than 52 characters"))
    zone = spec.get("timeZone")
    if zone is not None:
        try:
            load_zone(zone)
        except CronError as exc:
            causes.append(v.invalid("spec.timeZone", zone, str(exc)))
    schedule = spec.get("schedule")
    if not schedule:
        causes.append(v.required("spec.schedule"))
    else:
        try:
            parse_schedule(str(schedule))
        except CronError as exc:
            causes.append(v.invalid("spec.schedule", schedule, str(exc)))
    causes += v.one_of("spec.concurrencyPolicy", spec.get("concurrencyPolicy"), CONCURRENCY)
    for field in ("startingDeadlineSeconds", "successfulJobsHistoryLimit", "failedJobsHistoryLimit"):
        causes += v.non_negative(f"spec.{field}", spec.get(field))
    template = spec.get("jobTemplate")
    if not isinstance(template, dict):
        return causes + [v.required("spec.jobTemplate")]
    causes += validate_job_spec(template.get("spec"), "spec.jobTemplate.spec", generated_selector=False)
    return causes


# --- tables -------------------------------------------------------------------------


def _has_condition(obj: Obj, type_: str) -> bool:
    return any(as_dict(c).get("type") == type_ and as_dict(c).get("status") == "True"
               for c in as_list(get_path(obj, "status", "conditions")))


def job_status_cell(obj: Obj, now: datetime) -> str:
    if _has_condition(obj, "Complete"):
        return "Complete"
    if _has_condition(obj, "Failed"):
        return "Failed"
    if get_path(obj, "metadata", "deletionTimestamp"):
        return "Terminating"
    if _has_condition(obj, "Suspended"):
        return "Suspended"
    if _has_condition(obj, "FailureTarget"):
        return "FailureTarget"
    if _has_condition(obj, "SuccessCriteriaMet"):
        return "SuccessCriteriaMet"
    return "Running"


def completions_cell(obj: Obj, now: datetime) -> str:
    succeeded = get_path(obj, "status", "succeeded") or 0
    completions = get_path(obj, "spec", "completions")
    if completions is not None:
        return f"{succeeded}/{completions}"
    parallelism = get_path(obj, "spec", "parallelism") or 0
    if parallelism > 1:
        return f"{succeeded}/1 of {parallelism}"
    return f"{succeeded}/1"


def duration_cell(obj: Obj, now: datetime) -> str:
    start = parse_time(get_path(obj, "status", "startTime"))
    if start is None:
        return ""
    end = parse_time(get_path(obj, "status", "completionTime")) or now
    return human_duration((end - start).total_seconds())


_JOB_TEMPLATE = ("spec", "template")
_CRON_TEMPLATE = ("spec", "jobTemplate", "spec", "template")

JOB_COLUMNS = (
    NAME_COLUMN,
    Column("Status", "string", job_status_cell, "Status of the job."),
    Column("Completions", "string", completions_cell,
           "The desired number of successfully finished pods the job should be run with."),
    Column("Duration", "string", duration_cell, "Time required to complete the job."),
    AGE_COLUMN,
    containers_cell(_JOB_TEMPLATE),
    images_cell(_JOB_TEMPLATE),
    selector_column("A label query over pods that should match the pod count."),
)


def _cron_selector(obj: Obj, now: datetime) -> str:
    from corral.resources.tables import format_label_selector

    return format_label_selector(get_path(obj, "spec", "jobTemplate", "spec", "selector"))


CRONJOB_COLUMNS = (
    NAME_COLUMN,
    Column("Schedule", "string", lambda o, n: str(get_path(o, "spec", "schedule", default="")),
           "The schedule in Cron format."),
    Column("Timezone", "string",
           lambda o, n: str(get_path(o, "spec", "timeZone") or "<none>"),
           "The time zone name for the given schedule."),
    Column("Suspend", "boolean", lambda o, n: str(bool(get_path(o, "spec", "suspend"))),
           "This flag tells the controller to suspend subsequent executions."),
    Column("Active", "integer", lambda o, n: len(as_list(get_path(o, "status", "active"))),
           "A list of pointers to currently running jobs."),
    Column("Last Schedule", "string",
           lambda o, n: age_since(get_path(o, "status", "lastScheduleTime"), n)
           if get_path(o, "status", "lastScheduleTime") else "<none>",
           "Information when was the last time the job was successfully scheduled."),
    AGE_COLUMN,
    containers_cell(_CRON_TEMPLATE),
    images_cell(_CRON_TEMPLATE),
    Column("Selector", "string", _cron_selector, "A label query over pods.", priority=1),
)


def job_fields(obj: Obj) -> dict[str, str]:
    return {"status.successful": str(get_path(obj, "status", "succeeded") or 0)}


def job_type(schema: Schema) -> ResourceType:
    return ResourceType(
        group="batch", version="v1", kind="Job", plural="jobs", singular="job",
        namespaced=True, schema=schema, categories=("all",), subresources=("status",),
        columns=JOB_COLUMNS, defaulter=default_job, validator=validate_job,
        field_selectors=job_fields, has_status=True,
    )


def cronjob_type(schema: Schema) -> ResourceType:
    return ResourceType(
        group="batch", version="v1", kind="CronJob", plural="cronjobs", singular="cronjob",
        namespaced=True, schema=schema, short_names=("cj",), categories=("all",),
        subresources=("status",), columns=CRONJOB_COLUMNS, defaulter=default_cronjob,
        validator=validate_cronjob, has_status=True,
    )
