"""The registry of built-in kinds the API server serves.

Each kind is defined in its own module as a ``<kind>_type(schema)`` function;
this module only lists them, in discovery order, and hands each its schema.
"""

from __future__ import annotations

from corral.resources.apps import deployment_type, replicaset_type
from corral.resources.autoscaling import hpa_type, hpa_v1_type
from corral.resources.batch import cronjob_type, job_type
from corral.resources.certificates import csr_type
from corral.resources.configs import configmap_type, secret_type
from corral.resources.coordination import lease_type
from corral.resources.endpointslices import endpointslice_type
from corral.resources.events import event_type
from corral.resources.namespaces import namespace_type
from corral.resources.nodes import node_type
from corral.resources.pods import pod_type
from corral.resources.policy import pdb_type
from corral.resources.priorityclasses import priorityclass_type
from corral.resources.quota import limit_range_type, resource_quota_type
from corral.resources.rbac import (
    cluster_role_binding_type,
    cluster_role_type,
    role_binding_type,
    role_type,
)
from corral.resources.registry import Registry
from corral.resources.reviews import (
    self_subject_access_review_type,
    self_subject_review_type,
    self_subject_rules_review_type,
    subject_access_review_type,
)
from corral.resources.runtimeclasses import runtimeclass_type
from corral.resources.schema import Schema
from corral.resources.serviceaccounts import serviceaccount_type
from corral.resources.services import endpoints_type, service_type
from corral.resources.workloads import controllerrevision_type, daemonset_type, statefulset_type

BUILTIN_KINDS = (
    (("", "v1", "Namespace"), namespace_type),
    (("", "v1", "Node"), node_type),
    (("", "v1", "Pod"), pod_type),
    (("", "v1", "Service"), service_type),
    (("", "v1", "Endpoints"), endpoints_type),
    (("", "v1", "ConfigMap"), configmap_type),
    (("", "v1", "Secret"), secret_type),
    (("", "v1", "Event"), event_type),
    (("", "v1", "ServiceAccount"), serviceaccount_type),
    (("", "v1", "ResourceQuota"), resource_quota_type),
    (("", "v1", "LimitRange"), limit_range_type),
    (("apps", "v1", "Deployment"), deployment_type),
    (("apps", "v1", "ReplicaSet"), replicaset_type),
    (("apps", "v1", "DaemonSet"), daemonset_type),
    (("apps", "v1", "StatefulSet"), statefulset_type),
    (("apps", "v1", "ControllerRevision"), controllerrevision_type),
    (("batch", "v1", "Job"), job_type),
    (("batch", "v1", "CronJob"), cronjob_type),
    (("autoscaling", "v2", "HorizontalPodAutoscaler"), hpa_type),
    (("autoscaling", "v1", "HorizontalPodAutoscaler"), hpa_v1_type),
    (("policy", "v1", "PodDisruptionBudget"), pdb_type),
    (("coordination.k8s.io", "v1", "Lease"), lease_type),
    (("node.k8s.io", "v1", "RuntimeClass"), runtimeclass_type),
    (("rbac.authorization.k8s.io", "v1", "ClusterRole"), cluster_role_type),
    (("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding"), cluster_role_binding_type),
    (("rbac.authorization.k8s.io", "v1", "Role"), role_type),
    (("rbac.authorization.k8s.io", "v1", "RoleBinding"), role_binding_type),
    (("authorization.k8s.io", "v1", "SelfSubjectAccessReview"), self_subject_access_review_type),
    (("authorization.k8s.io", "v1", "SelfSubjectRulesReview"), self_subject_rules_review_type),
    (("authorization.k8s.io", "v1", "SubjectAccessReview"), subject_access_review_type),
    (("authentication.k8s.io", "v1", "SelfSubjectReview"), self_subject_review_type),
    (("certificates.k8s.io", "v1", "CertificateSigningRequest"), csr_type),
    (("scheduling.k8s.io", "v1", "PriorityClass"), priorityclass_type),
    (("discovery.k8s.io", "v1", "EndpointSlice"), endpointslice_type),
)


def schema_for(group: str, version: str, kind: str) -> Schema:
    """The one place kinds get their schema (strict unknown-field checks, OpenAPI)."""
    from corral.resources.schemas import kind_schema

    return kind_schema(group, version, kind)


def build_registry() -> Registry:
    return Registry(factory(schema_for(*gvk)) for gvk, factory in BUILTIN_KINDS)
