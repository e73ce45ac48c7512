from __future__ import annotations

import copy
import time

import pytest

from corral.api.errors import BadRequest
from corral.resources.schema_check import (
    check_fields,
    decode_error,
    duplicate_fields,
    strict_error,
    type_errors,
    unknown_fields,
)
from corral.resources.schemas import kind_schema

DEPLOYMENT = kind_schema("apps", "v1", "Deployment")
POD = kind_schema("", "v1", "Pod")


def deployment() -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "image": "nginx:1.27",
                            "ports": [{"containerPort": 80}],
                            "resources": {"limits": {"cpu": "500m", "memory": 1024, "x": 0.5}},
                            "readinessProbe": {"httpGet": {"path": "/", "port": "http"}},
                        }
                    ]
                },
            },
        },
    }


def test_clean_object_has_no_findings() -> None:
    report = check_fields(deployment(), DEPLOYMENT)
    assert report.unknown == [] and report.type_errors == []


def test_unknown_fields_are_named_by_path() -> None:
    obj = deployment()
    obj["spec"]["foo"] = 1
    obj["spec"]["template"]["spec"]["containers"][0]["imagee"] = "x"
    paths = [c.field for c in unknown_fields(obj, DEPLOYMENT)]
    assert paths == ["spec.template.spec.containers[0].imagee", "spec.foo"]
    assert {c.message for c in unknown_fields(obj, DEPLOYMENT)} == {
        'unknown field "spec.foo"',
        'unknown field "spec.template.spec.containers[0].imagee"',
    }


def test_strict_error_matches_kubernetes_wording() -> None:
    obj = deployment()
    obj["spec"]["foo"] = 1
    err = strict_error(unknown_fields(obj, DEPLOYMENT), kind="Deployment", version="v1")
    assert isinstance(err, BadRequest)
    status = err.status()
    assert status["code"] == 400 and status["reason"] == "BadRequest"
    assert status["message"] == (
        'Deployment in version "v1" cannot be handled as a Deployment: '
        'strict decoding error: unknown field "spec.foo"'
    )
    assert strict_error(["a", "b.c"]).message == (
        'strict decoding error: unknown field "a", unknown field "b.c"'
    )


def test_maps_accept_any_key_but_check_values() -> None:
    obj = deployment()
    obj["metadata"]["labels"]["anything.example.com/key"] = "v"
    obj["metadata"]["annotations"] = {"n": 5}
    report = check_fields(obj, DEPLOYMENT)
    assert report.unknown == []
    assert [c.field for c in report.type_errors] == ["metadata.annotations[n]"]


def test_preserve_unknown_subtrees_are_not_checked() -> None:
    obj = deployment()
    obj["metadata"]["managedFields"] = [{"manager": "m", "fieldsV1": {"f:spec": {"anything": {}}}}]
    assert unknown_fields(obj, DEPLOYMENT) == []


def test_wrong_type_reported_like_the_go_decoder() -> None:
    obj = deployment()
    obj["spec"]["replicas"] = "three"
    report = check_fields(obj, DEPLOYMENT)
    assert [c.field for c in report.type_errors] == ["spec.replicas"]
    assert report.type_errors[0].reason == "FieldValueTypeInvalid"
    err = decode_error(report, kind="Deployment", version="v1")
    assert err.code == 400
    assert err.message == (
        'Deployment in version "v1" cannot be handled as a Deployment: json: cannot unmarshal '
        "string into Go struct field DeploymentSpec.spec.replicas of type int32"
    )


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (["spec", "replicas"], True),
        (["spec", "replicas"], 2.5),
        (["spec", "paused"], "yes"),
        (["spec", "template", "spec", "containers"], {"name": "x"}),
        (["spec", "template", "spec"], []),
        (["spec", "strategy", "rollingUpdate", "maxSurge"], 1.5),
        (["spec", "strategy", "rollingUpdate", "maxSurge"], False),
        (["metadata", "creationTimestamp"], "yesterday"),
    ],
)
def test_type_errors(path: list[str], value: object) -> None:
    obj = deployment()
    node = obj
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    assert [c.field for c in type_errors(obj, DEPLOYMENT)] == [".".join(path)]


def test_null_is_accepted_anywhere() -> None:
    obj = deployment()
    obj["spec"]["replicas"] = None
    obj["spec"]["template"]["spec"]["containers"][0]["ports"] = None
    assert check_fields(obj, DEPLOYMENT).type_errors == []


def test_secret_data_must_be_base64() -> None:
    secret = kind_schema("", "v1", "Secret")
    ok = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"k": "aGVsbG8="}}
    assert type_errors(ok, secret) == []
    bad = copy.deepcopy(ok)
    bad["data"]["k"] = "not base64!"
    assert [c.field for c in type_errors(bad, secret)] == ["data[k]"]


def test_docs_pod_with_volumes_probes_and_affinity_passes() -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default"},
        "spec": {
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}
                        ]
                    }
                },
                "podAntiAffinity": {
                    "preferredDuringSchedulingIgnoredDuringExecution": [
                        {
                            "weight": 100,
                            "podAffinityTerm": {
                                "labelSelector": {"matchLabels": {"app": "x"}},
                                "topologyKey": "kubernetes.io/hostname",
                            },
                        }
                    ]
                },
            },
            "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule"}],
            "topologySpreadConstraints": [
                {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule",
                 "labelSelector": {"matchLabels": {"app": "x"}}}
            ],
            "securityContext": {"runAsUser": 1000, "fsGroup": 2000},
            "containers": [
                {
                    "name": "c",
                    "image": "busybox",
                    "command": ["sh", "-c", "sleep 3600"],
                    "env": [
                        {"name": "A", "value": "1"},
                        {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                        {"name": "C", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
                    ],
                    "envFrom": [{"configMapRef": {"name": "cm"}}],
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                    "livenessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 5},
                    "startupProbe": {"tcpSocket": {"port": 8080}},
                    "lifecycle": {"preStop": {"sleep": {"seconds": 5}}},
                    "securityContext": {"capabilities": {"drop": ["ALL"]}, "readOnlyRootFilesystem": True},
                }
            ],
            "volumes": [
                {"name": "data", "emptyDir": {"sizeLimit": "1Gi"}},
                {"name": "cfg", "configMap": {"name": "cm", "items": [{"key": "a", "path": "a"}]}},
                {"name": "sec", "secret": {"secretName": "s", "defaultMode": 420}},
                {"name": "host", "hostPath": {"path": "/tmp", "type": "Directory"}},
                {"name": "pvc", "persistentVolumeClaim": {"claimName": "c"}},
                {"name": "nfs", "nfs": {"server": "nfs.example.com", "path": "/export"}},
                {"name": "proj", "projected": {"sources": [
                    {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}},
                    {"downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
                ]}},
            ],
        },
    }
    report = check_fields(pod, POD)
    assert report.unknown == [] and report.type_errors == []


def test_duplicate_fields() -> None:
    raw = b'{"spec": {"replicas": 1, "replicas": 2, "template": {"x": [{"a": 1, "a": 2}]}}}'
    found = duplicate_fields(raw)
    assert [c.field for c in found] == ["spec.replicas", "spec.template.x[0].a"]
    assert found[0].message == 'duplicate field "spec.replicas"'
    assert duplicate_fields(b'{"a": {"b": 1}, "c": {"b": 2}}') == []
    with pytest.raises(ValueError):
        duplicate_fields(b"{nope")


def test_check_is_fast_enough_for_every_write() -> None:
    obj = deployment()
    check_fields(obj, DEPLOYMENT)
    start = time.perf_counter()
    for _ in range(1000):
        check_fields(obj, DEPLOYMENT)
    per_call = (time.perf_counter() - start) / 1000
    assert per_call < 0.001, per_call


def test_plain_fields_shortcut_judges_as_the_walk_does() -> None:
    """The one-lookup pass for plain strings, booleans and integers: a null
    under an unknown key is still unknown, a boolean is no integer, a
    string where a map's own property wants an object is still a type
    error, a formatted string is still parsed, a map's plain values pass."""
    from corral.resources.schema import Schema
    from corral.resources.schema_check import check_changed_fields

    both = Schema(type="object", properties={"spec": Schema(type="object", properties={})},
                  additional_properties=Schema(type="string"))
    assert [c.field for c in check_fields({"spec": "x", "other": "y"}, both).type_errors] == ["spec"]
    pod = {"metadata": {"name": "p", "labels": {"a": "b"}, "bogus": None},
           "spec": {"priority": True, "hostNetwork": 1, "nodeName": 3},
           "status": {"startTime": "yesterday", "phase": "Running"}}
    for report in (check_fields(pod, POD), check_changed_fields(pod, {"metadata": {}, "spec": {}, "status": {}}, POD)):
        assert [c.field for c in report.unknown] == ["metadata.bogus"]
        assert sorted(c.field for c in report.type_errors) == [
            "spec.hostNetwork", "spec.nodeName", "spec.priority", "status.startTime"]
