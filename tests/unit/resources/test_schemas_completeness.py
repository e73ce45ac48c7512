"""Our schemas against the `kubernetes` client's models: every field the
client knows for a kind must be in our schema, with a compatible type."""

from __future__ import annotations

import re

import kubernetes.client as k8s
import pytest

from corral.resources.schema import Schema
from corral.resources.schemas import all_kind_schemas, kind_schema, meta_kind_schemas

CLIENT_MODELS = {
    ("", "v1", "Namespace"): "V1Namespace",
    ("", "v1", "Node"): "V1Node",
    ("", "v1", "Pod"): "V1Pod",
    ("", "v1", "Service"): "V1Service",
    ("", "v1", "Endpoints"): "V1Endpoints",
    ("", "v1", "ConfigMap"): "V1ConfigMap",
    ("", "v1", "Secret"): "V1Secret",
    ("", "v1", "Event"): "CoreV1Event",
    ("", "v1", "ServiceAccount"): "V1ServiceAccount",
    ("", "v1", "Binding"): "V1Binding",
    ("apps", "v1", "Deployment"): "V1Deployment",
    ("apps", "v1", "ReplicaSet"): "V1ReplicaSet",
    ("coordination.k8s.io", "v1", "Lease"): "V1Lease",
    ("policy", "v1", "Eviction"): "V1Eviction",
    ("autoscaling", "v1", "Scale"): "V1Scale",
    ("apps", "v1", "DaemonSet"): "V1DaemonSet",
    ("apps", "v1", "StatefulSet"): "V1StatefulSet",
    ("apps", "v1", "ControllerRevision"): "V1ControllerRevision",
    ("batch", "v1", "Job"): "V1Job",
    ("batch", "v1", "CronJob"): "V1CronJob",
    ("autoscaling", "v2", "HorizontalPodAutoscaler"): "V2HorizontalPodAutoscaler",
    ("autoscaling", "v1", "HorizontalPodAutoscaler"): "V1HorizontalPodAutoscaler",
    ("policy", "v1", "PodDisruptionBudget"): "V1PodDisruptionBudget",
    ("rbac.authorization.k8s.io", "v1", "Role"): "V1Role",
    ("rbac.authorization.k8s.io", "v1", "ClusterRole"): "V1ClusterRole",
    ("rbac.authorization.k8s.io", "v1", "RoleBinding"): "V1RoleBinding",
    ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding"): "V1ClusterRoleBinding",
    ("authorization.k8s.io", "v1", "SubjectAccessReview"): "V1SubjectAccessReview",
    ("authorization.k8s.io", "v1", "SelfSubjectAccessReview"): "V1SelfSubjectAccessReview",
    ("authorization.k8s.io", "v1", "SelfSubjectRulesReview"): "V1SelfSubjectRulesReview",
    ("authentication.k8s.io", "v1", "TokenRequest"): "AuthenticationV1TokenRequest",
    ("authentication.k8s.io", "v1", "SelfSubjectReview"): "V1SelfSubjectReview",
    ("", "v1", "ResourceQuota"): "V1ResourceQuota",
    ("", "v1", "LimitRange"): "V1LimitRange",
    ("certificates.k8s.io", "v1", "CertificateSigningRequest"): "V1CertificateSigningRequest",
    ("scheduling.k8s.io", "v1", "PriorityClass"): "V1PriorityClass",
    ("node.k8s.io", "v1", "RuntimeClass"): "V1RuntimeClass",
    ("discovery.k8s.io", "v1", "EndpointSlice"): "V1EndpointSlice",
    ("", "v1", "Status"): "V1Status",
    ("", "v1", "DeleteOptions"): "V1DeleteOptions",
    ("", "v1", "WatchEvent"): "V1WatchEvent",
}

_LIST = re.compile(r"^List\[(.+)\]$")
_DICT = re.compile(r"^Dict\[str, (.+)\]$")


def _compare(model_type: str, schema: Schema, path: str, problems: list[str]) -> None:
    """Walks one client type alongside our schema, recording every mismatch."""
    if schema.preserve_unknown:
        return
    if m := _LIST.match(model_type):
        if schema.type != "array" or schema.items is None:
            problems.append(f"{path}: client has a list, we have {schema.type}")
            return
        _compare(m.group(1), schema.items, f"{path}[]", problems)
    elif m := _DICT.match(model_type):
        if schema.additional_properties is None:
            problems.append(f"{path}: client has a map, we do not")
            return
        _compare(m.group(1), schema.additional_properties, f"{path}{{}}", problems)
    elif model_type in ("str", "datetime", "bytes"):
        if schema.type != "string":
            problems.append(f"{path}: client has {model_type}, we have {schema.type}")
        if model_type == "datetime" and schema.format != "date-time":
            problems.append(f"{path}: a timestamp without format date-time")
        if model_type == "bytes" and schema.format != "byte":
            problems.append(f"{path}: bytes without format byte")
    elif model_type == "int":
        if schema.type != "integer" or schema.format not in ("int32", "int64"):
            problems.append(f"{path}: client has int, we have {schema.type}/{schema.format}")
    elif model_type == "bool":
        if schema.type != "boolean":
            problems.append(f"{path}: client has bool, we have {schema.type}")
    elif model_type == "object":
        if not (schema.int_or_string or schema.preserve_unknown):
            problems.append(f"{path}: client has an untyped value, we have {schema.type}")
    else:
        model = getattr(k8s, model_type)
        if schema.type != "object":
            problems.append(f"{path}: client has {model_type}, we have {schema.type}")
            return
        for attr, attr_type in model.openapi_types.items():
            json_name = model.attribute_map[attr]
            sub = schema.properties.get(json_name)
            if sub is None:
                problems.append(f"{path}.{json_name}: missing (client {model_type})")
                continue
            _compare(attr_type, sub, f"{path}.{json_name}".lstrip("."), problems)


@pytest.mark.parametrize("gvk", sorted(CLIENT_MODELS), ids=lambda g: "/".join(g))
def test_schema_has_every_field_the_client_knows(gvk: tuple[str, str, str]) -> None:
    problems: list[str] = []
    _compare(CLIENT_MODELS[gvk], kind_schema(*gvk), "", problems)
    assert problems == []


def test_every_kind_is_cross_checked() -> None:
    assert set(all_kind_schemas()) | set(meta_kind_schemas()) == set(CLIENT_MODELS)


def test_quantities_accept_numbers_and_strings() -> None:
    pod = kind_schema("", "v1", "Pod")
    limits = pod.at(["spec", "containers", 0, "resources", "limits", "cpu"])
    assert limits is not None and limits.int_or_string
    assert pod.at(["spec", "containers", 0, "ports", 0, "containerPort"]).format == "int32"
    assert pod.at(["spec", "terminationGracePeriodSeconds"]).format == "int64"
