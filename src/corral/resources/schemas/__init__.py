"""Schemas of the kinds corral serves, by (group, version, kind).

Adding a kind is adding one module constant built with :mod:`.dsl` and one
line in :func:`all_kind_schemas`. The registry asks :func:`kind_schema` for the
schema of each ResourceType it builds.
"""

from __future__ import annotations

from corral.resources.schema import Schema
from corral.resources.schemas import (
    apps_v1,
    apps_workloads,
    authorization_v1,
    autoscaling_hpa,
    autoscaling_v1,
    batch_v1,
    certificates_v1,
    coordination_v1,
    core_v1,
    discovery_v1,
    meta,
    node_v1,
    pod_status,
    policy_pdb,
    policy_v1,
    quota_v1,
    rbac_v1,
    scheduling_v1,
)

GVK = tuple[str, str, str]


def all_kind_schemas() -> dict[GVK, Schema]:
    """Every top-level kind, including the bodies of subresources (Binding,
    Eviction, Scale). The meta types are in :func:`meta_kind_schemas`."""
    return {
        ("", "v1", "Namespace"): core_v1.NAMESPACE,
        ("", "v1", "Node"): core_v1.NODE,
        ("", "v1", "Pod"): pod_status.POD,
        ("", "v1", "Service"): core_v1.SERVICE,
        ("", "v1", "Endpoints"): core_v1.ENDPOINTS,
        ("", "v1", "ConfigMap"): core_v1.CONFIG_MAP,
        ("", "v1", "Secret"): core_v1.SECRET,
        ("", "v1", "Event"): core_v1.EVENT,
        ("", "v1", "ServiceAccount"): core_v1.SERVICE_ACCOUNT,
        ("", "v1", "Binding"): core_v1.BINDING,
        ("apps", "v1", "Deployment"): apps_v1.DEPLOYMENT,
        ("apps", "v1", "ReplicaSet"): apps_v1.REPLICA_SET,
        ("coordination.k8s.io", "v1", "Lease"): coordination_v1.LEASE,
        ("node.k8s.io", "v1", "RuntimeClass"): node_v1.RUNTIME_CLASS,
        ("policy", "v1", "Eviction"): policy_v1.EVICTION,
        ("scheduling.k8s.io", "v1", "PriorityClass"): scheduling_v1.PRIORITY_CLASS,
        ("discovery.k8s.io", "v1", "EndpointSlice"): discovery_v1.ENDPOINT_SLICE,
        ("autoscaling", "v1", "Scale"): autoscaling_v1.SCALE,
        ("apps", "v1", "DaemonSet"): apps_workloads.DAEMON_SET,
        ("apps", "v1", "StatefulSet"): apps_workloads.STATEFUL_SET,
        ("apps", "v1", "ControllerRevision"): apps_workloads.CONTROLLER_REVISION,
        ("batch", "v1", "Job"): batch_v1.JOB,
        ("batch", "v1", "CronJob"): batch_v1.CRON_JOB,
        ("autoscaling", "v2", "HorizontalPodAutoscaler"): autoscaling_hpa.HPA_V2,
        ("autoscaling", "v1", "HorizontalPodAutoscaler"): autoscaling_hpa.HPA_V1,
        ("policy", "v1", "PodDisruptionBudget"): policy_pdb.POD_DISRUPTION_BUDGET,
        ("rbac.authorization.k8s.io", "v1", "Role"): rbac_v1.ROLE,
        ("rbac.authorization.k8s.io", "v1", "ClusterRole"): rbac_v1.CLUSTER_ROLE,
        ("rbac.authorization.k8s.io", "v1", "RoleBinding"): rbac_v1.ROLE_BINDING,
        ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding"): rbac_v1.CLUSTER_ROLE_BINDING,
        ("authorization.k8s.io", "v1", "SubjectAccessReview"): authorization_v1.SUBJECT_ACCESS_REVIEW,
        ("authorization.k8s.io", "v1", "SelfSubjectAccessReview"): authorization_v1.SELF_SUBJECT_ACCESS_REVIEW,
        ("authorization.k8s.io", "v1", "SelfSubjectRulesReview"): authorization_v1.SELF_SUBJECT_RULES_REVIEW,
        ("authentication.k8s.io", "v1", "TokenRequest"): authorization_v1.TOKEN_REQUEST,
        ("authentication.k8s.io", "v1", "SelfSubjectReview"): authorization_v1.SELF_SUBJECT_REVIEW,
        ("", "v1", "ResourceQuota"): quota_v1.RESOURCE_QUOTA,
        ("", "v1", "LimitRange"): quota_v1.LIMIT_RANGE,
        ("certificates.k8s.io", "v1", "CertificateSigningRequest"): certificates_v1.CERTIFICATE_SIGNING_REQUEST,
    }


def meta_kind_schemas() -> dict[GVK, Schema]:
    """The wire-protocol bodies every group version shares, keyed as core v1
    (the apiVersion they are served with)."""
    return {
        ("", "v1", "Status"): meta.STATUS,
        ("", "v1", "DeleteOptions"): meta.DELETE_OPTIONS,
        ("", "v1", "WatchEvent"): meta.WATCH_EVENT,
    }


def kind_schema(group: str, version: str, kind: str) -> Schema:
    """The schema of one kind; raises KeyError naming the kind if we have none."""
    key = (group, version, kind)
    schema = all_kind_schemas().get(key) or meta_kind_schemas().get(key)
    if schema is None:
        gv = f"{group}/{version}" if group else version
        raise KeyError(f"no schema for kind {kind} in {gv}")
    return schema


__all__ = ["GVK", "all_kind_schemas", "kind_schema", "meta_kind_schemas"]
