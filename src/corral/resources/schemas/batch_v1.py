"""batch/v1 kinds: Job and CronJob.

Field names and list semantics follow k8s.io/api batch/v1; descriptions are ours.
"""

from __future__ import annotations

from corral.resources.schemas.dsl import (
    arr,
    boolean,
    free_form,
    int64,
    integer,
    kind_object,
    obj,
    string,
    strings,
    time,
)
from corral.resources.schemas.meta import LABEL_SELECTOR, OBJECT_META
from corral.resources.schemas.pod import POD_TEMPLATE_SPEC

BATCH = "io.k8s.api.batch.v1"
CORE = "io.k8s.api.core.v1"

POD_FAILURE_POLICY_RULE = obj(
    "Matches a failed pod by exit codes or pod conditions and says what to do.",
    {
        "action": string("FailJob, FailIndex, Ignore or Count.",
                         enum=("Count", "FailIndex", "FailJob", "Ignore")),
        "onExitCodes": obj(
            "Exit codes of the pod's containers that match the rule.",
            {
                "containerName": string("Only this container's exit code counts."),
                "operator": string("In or NotIn.", enum=("In", "NotIn")),
                "values": arr(integer(), "Exit codes.", list_type="set"),
            },
            required=("operator", "values"),
            ref=f"{BATCH}.PodFailurePolicyOnExitCodesRequirement",
        ),
        "onPodConditions": arr(
            obj("A pod condition that matches the rule.",
                {"status": string("True, False or Unknown."), "type": string("Condition type.")},
                required=("type",),
                ref=f"{BATCH}.PodFailurePolicyOnPodConditionsPattern"),
            "Pod conditions, ORed.",
        ),
    },
    required=("action",),
    ref=f"{BATCH}.PodFailurePolicyRule",
)

JOB_CONDITION = obj(
    "One aspect of a Job's state: Complete, Failed, Suspended, FailureTarget, SuccessCriteriaMet.",
    {
        "lastProbeTime": time(),
        "lastTransitionTime": time(),
        "message": string("Details of the transition."),
        "reason": string("CamelCase reason, e.g. BackoffLimitExceeded."),
        "status": string("True, False or Unknown."),
        "type": string("Condition type."),
    },
    required=("type", "status"),
    ref=f"{BATCH}.JobCondition",
)

JOB_SPEC = obj(
    "Desired state of a Job: how many pods must succeed, how many run at once, when to give up.",
    {
        "activeDeadlineSeconds": int64("Seconds the job may be active before it is failed."),
        "backoffLimit": integer("Retries before the job is failed; default 6."),
        "backoffLimitPerIndex": integer("Retries per index of an Indexed job."),
        "completionMode": string("NonIndexed (default) or Indexed.", enum=("Indexed", "NonIndexed")),
        "completions": integer("Pods that must succeed; null means any one success."),
        "managedBy": string("Controller that manages the job."),
        "manualSelector": boolean("Use the given selector instead of a generated one."),
        "maxFailedIndexes": integer("Failed indexes before the job fails."),
        "parallelism": integer("Pods running at once; default 1."),
        "podFailurePolicy": obj(
            "Rules for failed pods, checked in order.",
            {"rules": arr(POD_FAILURE_POLICY_RULE, "The rules.")},
            required=("rules",),
            ref=f"{BATCH}.PodFailurePolicy",
        ),
        "podReplacementPolicy": string("TerminatingOrFailed or Failed."),
        "scheduling": free_form("Scheduling constraints of the job's pods as a group (kept as sent)."),
        "selector": LABEL_SELECTOR,
        "successPolicy": obj(
            "When the job is declared succeeded before all completions.",
            {"rules": arr(obj("One success rule.",
                              {"succeededCount": integer("Indexes that must succeed."),
                               "succeededIndexes": string("Indexes that must succeed, e.g. 0-2,5.")},
                              ref=f"{BATCH}.SuccessPolicyRule"), "The rules.")},
            required=("rules",),
            ref=f"{BATCH}.SuccessPolicy",
        ),
        "suspend": boolean("Stop creating pods and delete running ones."),
        "template": POD_TEMPLATE_SPEC,
        "ttlSecondsAfterFinished": integer("Seconds after finishing before the job is deleted."),
    },
    required=("template",),
    ref=f"{BATCH}.JobSpec",
)

JOB_STATUS = obj(
    "Observed state of a Job.",
    {
        "active": integer("Pending and running pods."),
        "completedIndexes": string("Completed indexes of an Indexed job, e.g. 1,3-5."),
        "completionTime": time(),
        "conditions": arr(JOB_CONDITION, "Current conditions.", list_type="atomic",
                          merge_key="type", strategy="merge"),
        "failed": integer("Pods that failed."),
        "failedIndexes": string("Failed indexes when backoffLimitPerIndex is set."),
        "ready": integer("Active pods with a Ready condition."),
        "startTime": time(),
        "succeeded": integer("Pods that succeeded."),
        "terminating": integer("Pods being terminated."),
        "uncountedTerminatedPods": obj(
            "Finished pods not yet counted in status.",
            {"failed": strings("UIDs.", list_type="set"),
             "succeeded": strings("UIDs.", list_type="set")},
            ref=f"{BATCH}.UncountedTerminatedPods",
        ),
    },
    ref=f"{BATCH}.JobStatus",
)

JOB = kind_object(
    f"{BATCH}.Job",
    "Runs pods to completion: a number of successes, retried within limits.",
    {"spec": JOB_SPEC, "status": JOB_STATUS},
    metadata=OBJECT_META,
)

JOB_TEMPLATE_SPEC = obj(
    "The Job a CronJob creates at each scheduled time.",
    {"metadata": OBJECT_META, "spec": JOB_SPEC},
    ref=f"{BATCH}.JobTemplateSpec",
)

CRON_JOB = kind_object(
    f"{BATCH}.CronJob",
    "Creates Jobs on a cron schedule.",
    {
        "spec": obj(
            "Desired state of a CronJob.",
            {
                "concurrencyPolicy": string("Allow (default), Forbid or Replace.",
                                            enum=("Allow", "Forbid", "Replace")),
                "failedJobsHistoryLimit": integer("Failed jobs kept; default 1."),
                "jobTemplate": JOB_TEMPLATE_SPEC,
                "schedule": string("Cron schedule, e.g. */5 * * * * or @hourly."),
                "startingDeadlineSeconds": int64("Seconds after a missed time it may still start."),
                "successfulJobsHistoryLimit": integer("Successful jobs kept; default 3."),
                "suspend": boolean("Create no new jobs."),
                "timeZone": string("IANA time zone of the schedule, e.g. Europe/Paris."),
            },
            required=("schedule", "jobTemplate"),
            ref=f"{BATCH}.CronJobSpec",
        ),
        "status": obj(
            "Observed state of a CronJob.",
            {
                "active": arr(
                    obj("A reference to a running job.",
                        {"apiVersion": string(), "fieldPath": string(), "kind": string(),
                         "name": string(), "namespace": string(), "resourceVersion": string(),
                         "uid": string()},
                        ref=f"{CORE}.ObjectReference", map_type="atomic"),
                    "Jobs running now.",
                ),
                "lastScheduleTime": time(),
                "lastSuccessfulTime": time(),
            },
            ref=f"{BATCH}.CronJobStatus",
        ),
    },
    metadata=OBJECT_META,
)
