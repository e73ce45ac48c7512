"""Protobuf descriptors for batch/v1.

Field numbers, types and JSON names are facts from Kubernetes k8s.io/api v0.36.3
(`generated.proto` joined with the Go struct tags of `types.go`); the notation
is explained in :mod:`corral.api.protobuf.schema`.
"""

from __future__ import annotations

TABLES: dict[str, dict[str, dict[int, str]]] = {
    "batch.v1": {
        "Job": {1: 'metadata meta.v1.ObjectMeta', 2: 'spec JobSpec', 3: 'status JobStatus'},
        "JobSpec": {
            1: 'parallelism int32 *', 2: 'completions int32 *', 3: 'activeDeadlineSeconds int64 *',
            4: 'selector meta.v1.LabelSelector', 5: 'manualSelector bool *',
            6: 'template core.v1.PodTemplateSpec', 7: 'backoffLimit int32 *',
            8: 'ttlSecondsAfterFinished int32 *', 9: 'completionMode string *', 10: 'suspend bool *',
            11: 'podFailurePolicy PodFailurePolicy', 12: 'backoffLimitPerIndex int32 *',
            13: 'maxFailedIndexes int32 *', 14: 'podReplacementPolicy string *',
            15: 'managedBy string *', 16: 'successPolicy SuccessPolicy',
        },
        "PodFailurePolicy": {1: 'rules []PodFailurePolicyRule'},
        "PodFailurePolicyRule": {
            1: 'action string *', 2: 'onExitCodes PodFailurePolicyOnExitCodesRequirement',
            3: 'onPodConditions []PodFailurePolicyOnPodConditionsPattern',
        },
        "PodFailurePolicyOnExitCodesRequirement": {
            1: 'containerName string *', 2: 'operator string *', 3: 'values []int32',
        },
        "PodFailurePolicyOnPodConditionsPattern": {1: 'type string *', 2: 'status string *'},
        "SuccessPolicy": {1: 'rules []SuccessPolicyRule'},
        "SuccessPolicyRule": {1: 'succeededIndexes string *', 2: 'succeededCount int32 *'},
        "JobStatus": {
            1: 'conditions []JobCondition', 2: 'startTime meta.v1.Time',
            3: 'completionTime meta.v1.Time', 4: 'active int32', 5: 'succeeded int32',
            6: 'failed int32', 7: 'completedIndexes string',
            8: 'uncountedTerminatedPods UncountedTerminatedPods', 9: 'ready int32 *',
            10: 'failedIndexes string *', 11: 'terminating int32 *',
        },
        "JobCondition": {
            1: 'type string *', 2: 'status string *', 3: 'lastProbeTime meta.v1.Time',
            4: 'lastTransitionTime meta.v1.Time', 5: 'reason string', 6: 'message string',
        },
        "UncountedTerminatedPods": {1: 'succeeded []string', 2: 'failed []string'},
        "CronJob": {1: 'metadata meta.v1.ObjectMeta', 2: 'spec CronJobSpec', 3: 'status CronJobStatus'},
        "CronJobSpec": {
            1: 'schedule string *', 2: 'startingDeadlineSeconds int64 *',
            3: 'concurrencyPolicy string', 4: 'suspend bool *', 5: 'jobTemplate JobTemplateSpec',
            6: 'successfulJobsHistoryLimit int32 *', 7: 'failedJobsHistoryLimit int32 *',
            8: 'timeZone string *',
        },
        "JobTemplateSpec": {1: 'metadata meta.v1.ObjectMeta', 2: 'spec JobSpec'},
        "CronJobStatus": {
            1: 'active []core.v1.ObjectReference', 4: 'lastScheduleTime meta.v1.Time',
            5: 'lastSuccessfulTime meta.v1.Time',
        },
    },
}
