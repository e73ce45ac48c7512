"""Defaults as Kubernetes fills them in."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corral.resources.builtin import build_registry
from corral.resources.podspec import compute_qos_class, default_pull_policy

REGISTRY = build_registry()


def defaulted(group: str, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    rt = REGISTRY.by_kind(group, kind)
    assert rt is not None
    rt.defaulter(obj)
    return obj


def container(**extra: Any) -> dict[str, Any]:
    return {"name": "web", "image": "nginx:1.27", **extra}


def test_pod_defaults() -> None:
    pod = defaulted("", "Pod", {"metadata": {"name": "p"}, "spec": {"containers": [
        container(ports=[{"containerPort": 80}])]}})
    spec = pod["spec"]
    assert spec["restartPolicy"] == "Always"
    assert spec["dnsPolicy"] == "ClusterFirst"
    assert spec["terminationGracePeriodSeconds"] == 30
    assert spec["schedulerName"] == "default-scheduler"
    assert spec["securityContext"] == {}
    assert spec["enableServiceLinks"] is True
    assert spec["priority"] == 0
    assert spec["serviceAccountName"] == "default"
    assert [t["key"] for t in spec["tolerations"]] == [
        "node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"]
    c = spec["containers"][0]
    assert c["terminationMessagePath"] == "/dev/termination-log"
    assert c["terminationMessagePolicy"] == "File"
    assert c["imagePullPolicy"] == "IfNotPresent"
    assert c["resources"] == {}
    assert c["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    assert pod["status"] == {"phase": "Pending", "qosClass": "BestEffort"}


def test_pod_defaults_keep_what_is_set() -> None:
    pod = defaulted("", "Pod", {"metadata": {"name": "p"}, "spec": {
        "restartPolicy": "Never", "terminationGracePeriodSeconds": 0,
        "serviceAccountName": "robot", "priorityClassName": "high",
        "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                         "effect": "NoExecute", "tolerationSeconds": 10}],
        "containers": [container(imagePullPolicy="Never")]},
        "status": {"phase": "Running"}})
    spec = pod["spec"]
    assert spec["restartPolicy"] == "Never"
    assert spec["terminationGracePeriodSeconds"] == 0
    assert spec["serviceAccountName"] == spec["serviceAccount"] == "robot"
    assert "priority" not in spec  # the Priority admission resolves the class
    assert [t.get("tolerationSeconds") for t in spec["tolerations"]] == [10, 0]  # corral: 0, not 300
    assert spec["containers"][0]["imagePullPolicy"] == "Never"
    assert pod["status"]["phase"] == "Running"


def test_defaulting_twice_changes_nothing() -> None:
    import copy

    pod = defaulted("", "Pod", {"metadata": {"name": "p"}, "spec": {"containers": [container()]}})
    again = defaulted("", "Pod", copy.deepcopy(pod))
    assert again == pod


@pytest.mark.parametrize(("image", "policy"), [
    ("nginx", "Always"), ("nginx:latest", "Always"), ("nginx:1.27", "IfNotPresent"),
    ("registry:5000/team/app", "Always"), ("registry:5000/team/app:v1", "IfNotPresent"),
    ("app@sha256:" + "a" * 64, "IfNotPresent"), ("localhost:5000/app:latest", "Always"),
])
def test_image_pull_policy(image: str, policy: str) -> None:
    assert default_pull_policy(image) == policy


def test_limits_become_requests_and_probe_defaults() -> None:
    pod = defaulted("", "Pod", {"metadata": {"name": "p"}, "spec": {"containers": [container(
        resources={"limits": {"cpu": "500m", "memory": "128Mi"}},
        livenessProbe={"httpGet": {"port": 8080}},
        env=[{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
    )], "volumes": [{"name": "scratch"}, {"name": "cfg", "configMap": {"name": "c"}}]}})
    c = pod["spec"]["containers"][0]
    assert c["resources"]["requests"] == {"cpu": "500m", "memory": "128Mi"}
    assert c["livenessProbe"] == {"httpGet": {"port": 8080, "path": "/", "scheme": "HTTP"},
                                  "timeoutSeconds": 1, "periodSeconds": 10,
                                  "successThreshold": 1, "failureThreshold": 3}
    assert c["env"][0]["valueFrom"]["fieldRef"]["apiVersion"] == "v1"
    assert pod["spec"]["volumes"] == [{"name": "scratch", "emptyDir": {}},
                                      {"name": "cfg", "configMap": {"name": "c", "defaultMode": 420}}]
    assert pod["status"]["qosClass"] == "Guaranteed"


@pytest.mark.parametrize(("resources", "qos"), [
    ([{}], "BestEffort"),
    ([{"requests": {"cpu": "100m"}}], "Burstable"),
    ([{"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1", "memory": "1Gi"}}],
     "Guaranteed"),
    ([{"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m", "memory": "1Gi"}}],
     "Burstable"),
    ([{"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1", "memory": "1Gi"}}, {}],
     "Burstable"),
    ([{"requests": {"example.com/gpu": "1"}}], "BestEffort"),
])
def test_qos_class(resources: list[dict[str, Any]], qos: str) -> None:
    spec = {"containers": [{"name": f"c{i}", "resources": r} for i, r in enumerate(resources)]}
    assert compute_qos_class(spec) == qos


def test_deployment_defaults() -> None:
    d = defaulted("apps", "Deployment", {"metadata": {"name": "d"}, "spec": {
        "selector": {"matchLabels": {"app": "a"}},
        "template": {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [container()]}}}})
    spec = d["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "RollingUpdate",
                                "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}
    assert spec["revisionHistoryLimit"] == 10
    assert spec["progressDeadlineSeconds"] == 600
    tspec = spec["template"]["spec"]
    assert tspec["restartPolicy"] == "Always"
    assert tspec["containers"][0]["terminationMessagePolicy"] == "File"
    # Pod-only admission defaults stay out of templates, as in Kubernetes.
    assert "serviceAccountName" not in tspec and "tolerations" not in tspec
    assert "status" not in d


def test_recreate_strategy_gets_no_rolling_update() -> None:
    d = defaulted("apps", "Deployment", {"spec": {"strategy": {"type": "Recreate"}}})
    assert d["spec"]["strategy"] == {"type": "Recreate"}


def test_replicaset_defaults() -> None:
    rs = defaulted("apps", "ReplicaSet", {"spec": {"template": {"spec": {"containers": [
        container()]}}}})
    assert rs["spec"]["replicas"] == 1
    assert rs["spec"]["template"]["spec"]["dnsPolicy"] == "ClusterFirst"


def test_service_defaults() -> None:
    svc = defaulted("", "Service", {"spec": {"ports": [{"port": 80}, {"port": 53, "protocol": "UDP",
                                                                     "targetPort": "dns"}]}})
    spec = svc["spec"]
    assert spec["type"] == "ClusterIP"
    assert spec["sessionAffinity"] == "None"
    assert spec["internalTrafficPolicy"] == "Cluster"
    assert spec["ipFamilies"] == ["IPv4"] and spec["ipFamilyPolicy"] == "SingleStack"
    assert spec["ports"] == [{"port": 80, "protocol": "TCP", "targetPort": 80},
                             {"port": 53, "protocol": "UDP", "targetPort": "dns"}]
    assert "clusterIP" not in spec  # allocated by the API layer
    assert "externalTrafficPolicy" not in spec


def test_node_port_and_external_name_service_defaults() -> None:
    svc = defaulted("", "Service", {"spec": {"type": "NodePort", "ports": [{"port": 80}],
                                             "sessionAffinity": "ClientIP"}})
    assert svc["spec"]["externalTrafficPolicy"] == "Cluster"
    assert svc["spec"]["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 10800}}
    ext = defaulted("", "Service", {"spec": {"type": "ExternalName", "externalName": "a.b"}})
    assert "ipFamilies" not in ext["spec"] and "internalTrafficPolicy" not in ext["spec"]


def test_namespace_defaults() -> None:
    ns = defaulted("", "Namespace", {"metadata": {"name": "a"}})
    assert ns["spec"] == {"finalizers": ["kubernetes"]}
    assert ns["status"] == {"phase": "Active"}


def test_secret_defaults_fold_string_data() -> None:
    secret = defaulted("", "Secret", {"data": {"a": "eA=="}, "stringData": {"b": "héllo"}})
    assert secret["type"] == "Opaque"
    assert "stringData" not in secret
    assert base64.b64decode(secret["data"]["b"]).decode() == "héllo"
    assert secret["data"]["a"] == "eA=="
    typed = defaulted("", "Secret", {"type": "kubernetes.io/tls"})
    assert typed["type"] == "kubernetes.io/tls"


def test_event_and_node_defaults() -> None:
    assert defaulted("", "Event", {})["type"] == "Normal"
    assert defaulted("", "Event", {"type": "Warning"})["type"] == "Warning"
    node = defaulted("", "Node", {"status": {"capacity": {"cpu": "4", "pods": "110"}}})
    assert node["status"]["allocatable"] == {"cpu": "4", "pods": "110"}


def test_endpoints_port_protocol() -> None:
    ep = defaulted("", "Endpoints", {"subsets": [{"ports": [{"port": 80}]}]})
    assert ep["subsets"][0]["ports"][0]["protocol"] == "TCP"


@pytest.mark.parametrize("rt", REGISTRY.all(), ids=lambda rt: rt.kind)
def test_defaulters_survive_malformed_objects(rt: Any) -> None:
    for junk in ({}, {"spec": None}, {"spec": "x"}, {"spec": {"containers": "x"}},
                 {"spec": {"template": 3}}, {"status": []}, {"data": 3}, {"subsets": [1]}):
        rt.defaulter(dict(junk))
        rt.validator(dict(junk), None)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 70000) | st.text(max_size=6)
    | st.sampled_from(["Always", "None", "NodePort", "ExternalName", "RollingUpdate", "100m",
                       "Exists", "In", "web", "TCP", "1Gi"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["spec", "status", "metadata", "containers", "initContainers", "ports",
                         "name", "image", "resources", "limits", "requests", "cpu", "selector",
                         "matchLabels", "matchExpressions", "template", "labels", "strategy",
                         "rollingUpdate", "type", "data", "subsets", "addresses", "env",
                         "volumes", "volumeMounts", "taints", "tolerations", "port", "nodePort",
                         "clusterIP", "capacity", "containerStatuses", "state", "waiting",
                         "involvedObject", "finalizers", "stringData", "binaryData", "key",
                         "operator", "values", "livenessProbe", "httpGet", "valueFrom"]),
        inner, max_size=4),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([rt.plural for rt in REGISTRY.all()]), st.dictionaries(
    st.sampled_from(["spec", "status", "data", "subsets", "type", "involvedObject",
                     "stringData", "binaryData", "immutable"]), json_values, max_size=4),
    st.booleans())
def test_hooks_never_raise_on_any_json(plural: str, obj: dict[str, Any], with_old: bool) -> None:
    import copy
    from datetime import UTC, datetime

    rt = next(rt for rt in REGISTRY.all() if rt.plural == plural)
    obj["metadata"] = {"name": "x", "namespace": "default"}
    old = copy.deepcopy(obj) if with_old else None
    rt.defaulter(obj)
    for cause in rt.validator(obj, old):
        assert cause.field is not None and cause.message
    rt.field_selectors(obj)
    now = datetime(2025, 1, 1, tzinfo=UTC)
    for column in rt.columns:
        cell = column.cell(obj, now)
        if column.type == "boolean":
            # Kubernetes sends a bool for PriorityClass GLOBAL-DEFAULT ("false")
            # but the string "False" for CronJob SUSPEND; kubectl prints either as sent.
            assert isinstance(cell, bool) or cell in ("True", "False")
        else:
            assert isinstance(cell, str | int) and not isinstance(cell, bool)


RICH_OBJECTS: dict[str, dict[str, Any]] = {
    "pods": {"metadata": {"name": "p", "namespace": "d", "deletionTimestamp": "2025-01-01T00:00:00Z"},
             "spec": {"containers": [{"name": "a", "image": "i", "ports": [{"containerPort": 80,
                                                                            "name": "http"}],
                                      "env": [{"name": "X", "valueFrom": {"fieldRef": {}}}],
                                      "resources": {"limits": {"cpu": "1"}, "requests": {"cpu": "1"}},
                                      "volumeMounts": [{"name": "v", "mountPath": "/v"}],
                                      "livenessProbe": {"httpGet": {"port": 80}}}],
                      "initContainers": [{"name": "i", "image": "i", "restartPolicy": "Always"}],
                      "volumes": [{"name": "v", "configMap": {"name": "c"}}],
                      "tolerations": [{"key": "k", "operator": "Exists"}],
                      "readinessGates": [{"conditionType": "x"}], "nodeSelector": {"a": "b"}},
             "status": {"phase": "Running", "podIPs": [{"ip": "198.18.0.1"}],
                        "conditions": [{"type": "Ready", "status": "True"}],
                        "initContainerStatuses": [{"name": "i", "restartCount": 1, "started": True,
                                                   "state": {"running": {}}}],
                        "containerStatuses": [{"name": "a", "restartCount": 2, "ready": True,
                                               "state": {"waiting": {"reason": "X"}},
                                               "lastState": {"terminated": {
                                                   "finishedAt": "2025-01-01T00:00:00Z"}}}]}},
    "deployments": {"metadata": {"name": "d", "namespace": "d"},
                    "spec": {"replicas": 1, "selector": {"matchLabels": {"a": "b"},
                                                         "matchExpressions": [{"key": "a",
                                                                               "operator": "In",
                                                                               "values": ["b"]}]},
                             "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}},
                             "template": {"metadata": {"labels": {"a": "b"}},
                                          "spec": {"containers": [{"name": "a", "image": "i"}]}}},
                    "status": {"readyReplicas": 1}},
    "services": {"metadata": {"name": "s", "namespace": "d"},
                 "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "nodePort": 30001}],
                          "selector": {"a": "b"}, "externalIPs": ["198.18.0.9"],
                          "clusterIPs": ["127.10.0.1"]},
                 "status": {"loadBalancer": {"ingress": [{"ip": "198.18.0.2"}]}}},
    "endpoints": {"metadata": {"name": "s", "namespace": "d"},
                  "subsets": [{"addresses": [{"ip": "198.18.0.1"}], "ports": [{"port": 80}]}]},
    "nodes": {"metadata": {"name": "n", "labels": {"node-role.kubernetes.io/x": ""}},
              "spec": {"taints": [{"key": "k", "effect": "NoSchedule"}], "podCIDRs": ["198.18.0.0/24"]},
              "status": {"capacity": {"cpu": "1"}, "conditions": [{"type": "Ready", "status": "True"}],
                         "addresses": [{"type": "InternalIP", "address": "198.18.0.1"}],
                         "nodeInfo": {"osImage": "x"}}},
    "events": {"metadata": {"name": "e", "namespace": "d"}, "eventTime": "2025-01-01T00:00:00Z",
               "involvedObject": {"kind": "Pod", "name": "p", "namespace": "d"},
               "series": {"count": 2, "lastObservedTime": "2025-01-01T00:00:00Z"},
               "source": {"component": "c"}},
    "secrets": {"metadata": {"name": "s", "namespace": "d"}, "type": "kubernetes.io/tls",
                "data": {"tls.crt": "eA=="}, "stringData": {"tls.key": "k"}},
    "configmaps": {"metadata": {"name": "c", "namespace": "d"}, "data": {"a": "b"},
                   "binaryData": {"b": "eA=="}, "immutable": True},
    "namespaces": {"metadata": {"name": "n"}, "spec": {"finalizers": ["kubernetes"]},
                   "status": {"phase": "Active"}},
    "leases": {"metadata": {"name": "l", "namespace": "d"},
               "spec": {"holderIdentity": "h", "leaseDurationSeconds": 10}},
    "serviceaccounts": {"metadata": {"name": "s", "namespace": "d"}, "secrets": [{"name": "x"}]},
    "replicasets": {"metadata": {"name": "r", "namespace": "d"},
                    "spec": {"selector": {"matchLabels": {"a": "b"}},
                             "template": {"metadata": {"labels": {"a": "b"}},
                                          "spec": {"containers": [{"name": "a", "image": "i"}]}}},
                    "status": {"replicas": 1}},
}
JUNK = (None, 0, -1, "x", True, [], {}, [1], ["x"], {"a": 1}, [{}])


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _paths(value, (*prefix, i))
    return out


@pytest.mark.parametrize("plural", sorted(RICH_OBJECTS))
def test_hooks_never_raise_when_any_field_is_malformed(plural: str) -> None:
    import copy
    from datetime import UTC, datetime

    rt = next(rt for rt in REGISTRY.all() if rt.plural == plural)
    base = RICH_OBJECTS[plural]
    now = datetime(2025, 1, 2, tzinfo=UTC)
    for path in _paths(base):
        if path[0] == "metadata" and path[1:2] in (("name",), ("namespace",)):
            continue
        for junk in JUNK:
            obj = copy.deepcopy(base)
            node = obj
            for step in path[:-1]:
                node = node[step]
            node[path[-1]] = copy.deepcopy(junk)
            old = copy.deepcopy(base)
            try:
                rt.defaulter(obj)
                rt.validator(obj, old)
                rt.validator(obj, None)
                rt.field_selectors(obj)
                cells = [c.cell(obj, now) for c in rt.columns]
            except Exception as exc:  # pragma: no cover - the assertion says where
                raise AssertionError(f"{plural} with {path}={junk!r}: {exc!r}") from exc
            assert all(isinstance(c, str | int) and not isinstance(c, bool) for c in cells), (
                path, junk, cells)
