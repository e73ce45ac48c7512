"""Bad objects → the field and reason Kubernetes reports for them."""

from __future__ import annotations

import base64
import copy
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from corral.resources import validation as v
from corral.resources.builtin import build_registry
from corral.resources.types import FieldCause

REGISTRY = build_registry()


def pod() -> dict[str, Any]:
    return {"metadata": {"name": "web", "namespace": "default"},
            "spec": {"containers": [{"name": "web", "image": "nginx:1.27",
                                     "ports": [{"containerPort": 80}]}]}}


def deployment() -> dict[str, Any]:
    return {"metadata": {"name": "web", "namespace": "default"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}}


def replicaset() -> dict[str, Any]:
    obj = deployment()
    del obj["spec"]["replicas"]
    return obj


def service() -> dict[str, Any]:
    return {"metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


BASES: dict[str, Callable[[], dict[str, Any]]] = {
    "Pod": pod, "Deployment": deployment, "ReplicaSet": replicaset, "Service": service,
    "ConfigMap": lambda: {"metadata": {"name": "c", "namespace": "default"}, "data": {"a": "1"}},
    "Secret": lambda: {"metadata": {"name": "s", "namespace": "default"}, "data": {"a": b64("x")}},
    "Node": lambda: {"metadata": {"name": "n1"}, "spec": {}},
    "Namespace": lambda: {"metadata": {"name": "team-a"}},
    "Lease": lambda: {"metadata": {"name": "l", "namespace": "default"},
                      "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}},
    "Event": lambda: {"metadata": {"name": "e", "namespace": "default"},
                      "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default"},
                      "reason": "Started", "message": "ok"},
    "Endpoints": lambda: {"metadata": {"name": "web", "namespace": "default"},
                          "subsets": [{"addresses": [{"ip": "198.18.0.5"}],
                                       "ports": [{"port": 80}]}]},
}
GROUPS = {"Deployment": "apps", "ReplicaSet": "apps", "Lease": "coordination.k8s.io"}


def causes_for(kind: str, obj: dict[str, Any], old: dict[str, Any] | None = None) -> list[FieldCause]:
    """Default then validate, the way the API layer handles a write."""
    rt = REGISTRY.by_kind(GROUPS.get(kind, ""), kind)
    assert rt is not None
    obj = copy.deepcopy(obj)
    rt.defaulter(obj)
    if old is not None:
        old = copy.deepcopy(old)
        rt.defaulter(old)
    return v.validate_object_meta(obj["metadata"], rt.namespaced) + rt.validator(obj, old)


def mutate(kind: str, fn: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    obj = BASES[kind]()
    fn(obj)
    return obj


def _set(obj: dict[str, Any], path: str, value: Any) -> None:
    node: Any = obj
    steps = [int(s) if s.isdigit() else s for s in path.split(".")]
    for step in steps[:-1]:
        node = node[step]
    node[steps[-1]] = value


def s(kind: str, path: str, value: Any) -> dict[str, Any]:
    return mutate(kind, lambda o: _set(o, path, value))


BAD: list[tuple[str, dict[str, Any], str, str]] = [
    ("Pod", s("Pod", "metadata.name", "Web_1"), "metadata.name", "FieldValueInvalid"),
    ("Pod", s("Pod", "metadata.labels", {"bad key": "x"}), "metadata.labels", "FieldValueInvalid"),
    ("Pod", s("Pod", "metadata.labels", {"app": "-x"}), "metadata.labels", "FieldValueInvalid"),
    ("Pod", s("Pod", "metadata.annotations", {"a": "x" * 300000}), "metadata.annotations",
     "FieldValueTooLong"),
    ("Pod", s("Pod", "spec.containers", []), "spec.containers", "FieldValueRequired"),
    ("Pod", s("Pod", "spec.containers.0.image", ""), "spec.containers[0].image",
     "FieldValueRequired"),
    ("Pod", s("Pod", "spec.containers.0.name", "Web"), "spec.containers[0].name",
     "FieldValueInvalid"),
    ("Pod", s("Pod", "spec.containers.0.ports.0.containerPort", 70000),
     "spec.containers[0].ports[0].containerPort", "FieldValueInvalid"),
    ("Pod", s("Pod", "spec.containers.0.ports.0.protocol", "HTTP"),
     "spec.containers[0].ports[0].protocol", "FieldValueNotSupported"),
    ("Pod", s("Pod", "spec.restartPolicy", "Sometimes"), "spec.restartPolicy",
     "FieldValueNotSupported"),
    ("Pod", s("Pod", "spec.dnsPolicy", "Nope"), "spec.dnsPolicy", "FieldValueNotSupported"),
    ("Pod", s("Pod", "spec.dnsPolicy", "None"), "spec.dnsConfig", "FieldValueRequired"),
    ("Pod", s("Pod", "spec.containers.0.env", [{"name": "1BAD"}]),
     "spec.containers[0].env[0].name", "FieldValueInvalid"),
    ("Pod", s("Pod", "spec.containers.0.env", [{"value": "x"}]),
     "spec.containers[0].env[0].name", "FieldValueRequired"),
    ("Pod", s("Pod", "spec.containers.0.resources", {"requests": {"cpu": "lots"}}),
     "spec.containers[0].resources.requests[cpu]", "FieldValueInvalid"),
    ("Pod", s("Pod", "spec.containers.0.resources", {"requests": {"memory": "-1Gi"}}),
     "spec.containers[0].resources.requests[memory]", "FieldValueInvalid"),
    ("Pod", s("Pod", "spec.containers.0.resources",
              {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}),
     "spec.containers[0].resources.requests[cpu]", "FieldValueInvalid"),
    ("Pod", s("Pod", "spec.containers.0.imagePullPolicy", "Sometimes"),
     "spec.containers[0].imagePullPolicy", "FieldValueNotSupported"),
    ("Pod", s("Pod", "spec.containers.0.volumeMounts", [{"name": "data", "mountPath": "/d"}]),
     "spec.containers[0].volumeMounts[0].name", "FieldValueNotFound"),
    ("Pod", s("Pod", "spec.volumes", [{"name": "a", "emptyDir": {}}, {"name": "a", "emptyDir": {}}]),
     "spec.volumes[1].name", "FieldValueDuplicate"),
    ("Pod", s("Pod", "spec.tolerations", [{"key": "k", "operator": "Maybe"}]),
     "spec.tolerations[0].operator", "FieldValueNotSupported"),
    ("Pod", s("Pod", "spec.activeDeadlineSeconds", 0), "spec.activeDeadlineSeconds",
     "FieldValueInvalid"),
    ("Pod", s("Pod", "spec.containers.0.livenessProbe", {"periodSeconds": 5}),
     "spec.containers[0].livenessProbe", "FieldValueRequired"),
    ("Pod", s("Pod", "spec.initContainers", [{"name": "web", "image": "busybox"}]),
     "spec.containers[0].name", "FieldValueDuplicate"),
    ("Deployment", s("Deployment", "spec.replicas", -1), "spec.replicas", "FieldValueInvalid"),
    ("Deployment", s("Deployment", "spec.selector", None), "spec.selector", "FieldValueRequired"),
    ("Deployment", s("Deployment", "spec.template.metadata.labels", {"app": "other"}),
     "spec.template.metadata.labels", "FieldValueInvalid"),
    ("Deployment", s("Deployment", "spec.template.spec.restartPolicy", "Never"),
     "spec.template.spec.restartPolicy", "FieldValueNotSupported"),
    ("Deployment", s("Deployment", "spec.strategy", {"type": "Blue"}), "spec.strategy.type",
     "FieldValueNotSupported"),
    ("Deployment", s("Deployment", "spec.strategy",
                     {"type": "Recreate", "rollingUpdate": {"maxSurge": 1}}),
     "spec.strategy.rollingUpdate", "FieldValueForbidden"),
    ("Deployment", s("Deployment", "spec.strategy",
                     {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}),
     "spec.strategy.rollingUpdate.maxUnavailable", "FieldValueInvalid"),
    ("Deployment", s("Deployment", "spec.strategy",
                     {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "150%"}}),
     "spec.strategy.rollingUpdate.maxSurge", "FieldValueInvalid"),
    ("Deployment", mutate("Deployment", lambda o: o["spec"].update(
        minReadySeconds=10, progressDeadlineSeconds=5)),
     "spec.progressDeadlineSeconds", "FieldValueInvalid"),
    ("Deployment", s("Deployment", "spec.template.spec.containers.0.name", "a_b"),
     "spec.template.spec.containers[0].name", "FieldValueInvalid"),
    ("ReplicaSet", s("ReplicaSet", "spec.selector", {}), "spec.selector", "FieldValueInvalid"),
    ("ReplicaSet", s("ReplicaSet", "spec.selector",
                     {"matchExpressions": [{"key": "app", "operator": "In"}]}),
     "spec.selector.matchExpressions[0].values", "FieldValueRequired"),
    ("Service", s("Service", "metadata.name", "1web"), "metadata.name", "FieldValueInvalid"),
    ("Service", s("Service", "spec.ports", []), "spec.ports", "FieldValueRequired"),
    ("Service", s("Service", "spec.ports.0.port", 0), "spec.ports[0].port", "FieldValueInvalid"),
    ("Service", s("Service", "spec.type", "Magic"), "spec.type", "FieldValueNotSupported"),
    ("Service", s("Service", "spec.ports", [{"port": 80, "name": "a"}, {"port": 81}]),
     "spec.ports[1].name", "FieldValueRequired"),
    ("Service", s("Service", "spec.ports", [{"port": 80, "name": "a"}, {"port": 81, "name": "a"}]),
     "spec.ports[1].name", "FieldValueDuplicate"),
    ("Service", s("Service", "spec.ports", [{"port": 80, "name": "a"}, {"port": 80, "name": "b"}]),
     "spec.ports[1]", "FieldValueDuplicate"),
    ("Service", mutate("Service", lambda o: o["spec"].update(
        type="NodePort", ports=[{"port": 80, "nodePort": 80}])),
     "spec.ports[0].nodePort", "FieldValueInvalid"),
    ("Service", s("Service", "spec.ports", [{"port": 80, "nodePort": 30001}]),
     "spec.ports[0].nodePort", "FieldValueForbidden"),
    ("Service", mutate("Service", lambda o: o["spec"].update(type="NodePort", clusterIP="None")),
     "spec.clusterIPs[0]", "FieldValueInvalid"),
    ("Service", mutate("Service", lambda o: o["spec"].update(type="ExternalName")),
     "spec.externalName", "FieldValueRequired"),
    ("Service", s("Service", "spec.ports.0.protocol", "ICMP"), "spec.ports[0].protocol",
     "FieldValueNotSupported"),
    ("ConfigMap", s("ConfigMap", "data", {"bad key": "x"}), "data[bad key]", "FieldValueInvalid"),
    ("ConfigMap", s("ConfigMap", "data", {"big": "x" * (1024 * 1024 + 1)}), "data",
     "FieldValueTooLong"),
    ("ConfigMap", mutate("ConfigMap", lambda o: o.update(binaryData={"a": b64("y")})),
     "data[a]", "FieldValueInvalid"),
    ("Secret", s("Secret", "data", {"a": "not base64!"}), "data[a]", "FieldValueInvalid"),
    ("Secret", s("Secret", "data", {"..": b64("x")}), "data[..]", "FieldValueInvalid"),
    ("Secret", mutate("Secret", lambda o: o.update(type="kubernetes.io/tls")), "data[tls.crt]",
     "FieldValueRequired"),
    ("Node", s("Node", "spec.taints", [{"key": "k", "effect": "Sometimes"}]),
     "spec.taints[0].effect", "FieldValueNotSupported"),
    ("Node", s("Node", "spec.podCIDR", "not-a-cidr"), "spec.podCIDR", "FieldValueInvalid"),
    ("Node", mutate("Node", lambda o: o.update(status={"capacity": {"cpu": "four"}})),
     "status.capacity[cpu]", "FieldValueInvalid"),
    ("Node", s("Node", "metadata.namespace", "default"), "metadata.namespace",
     "FieldValueForbidden"),
    ("Namespace", s("Namespace", "metadata.name", "team.a"), "metadata.name", "FieldValueInvalid"),
    ("Lease", s("Lease", "spec.leaseDurationSeconds", 0), "spec.leaseDurationSeconds",
     "FieldValueInvalid"),
    ("Lease", s("Lease", "metadata.namespace", None), "metadata.namespace", "FieldValueRequired"),
    ("Event", s("Event", "involvedObject.namespace", "other"), "involvedObject.namespace",
     "FieldValueInvalid"),
    ("Event", s("Event", "type", "Spicy"), "type", "FieldValueNotSupported"),
    ("Endpoints", s("Endpoints", "subsets.0.addresses.0.ip", "nope"), "subsets[0].addresses[0].ip",
     "FieldValueInvalid"),
]


@pytest.mark.parametrize("kind", sorted(BASES))
def test_good_objects_pass(kind: str) -> None:
    assert causes_for(kind, BASES[kind]()) == []


@pytest.mark.parametrize(("kind", "obj", "field", "reason"), BAD,
                         ids=[f"{k}:{f}:{i}" for i, (k, _, f, _) in enumerate(BAD)])
def test_bad_objects(kind: str, obj: dict[str, Any], field: str, reason: str) -> None:
    causes = causes_for(kind, obj)
    assert (field, reason) in [(c.field, c.reason) for c in causes], causes


def test_messages_match_kubernetes() -> None:
    def message(kind: str, obj: dict[str, Any], field: str) -> str:
        return next(c.message for c in causes_for(kind, obj) if c.field == field)

    assert message("Pod", s("Pod", "metadata.name", "Web_1"), "metadata.name") == (
        "Invalid value: \"Web_1\": a lowercase RFC 1123 subdomain must consist of lower case "
        "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric "
        "character (e.g. 'example.com', regex used for validation is "
        "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
    assert message("Deployment", s("Deployment", "spec.replicas", -1), "spec.replicas") == (
        "Invalid value: -1: must be greater than or equal to 0")
    assert message("Deployment", s("Deployment", "spec.template.metadata.labels", {"app": "x"}),
                   "spec.template.metadata.labels") == (
        'Invalid value: map[string]string{"app":"x"}: `selector` does not match template `labels`')
    assert message("Pod", s("Pod", "spec.containers.0.ports.0.containerPort", 70000),
                   "spec.containers[0].ports[0].containerPort") == (
        "Invalid value: 70000: must be between 1 and 65535, inclusive")
    two = mutate("Pod", lambda o: o["spec"]["containers"].append({"name": "web", "image": "x"}))
    assert message("Pod", two, "spec.containers[1].name") == 'Duplicate value: "web"'
    assert message("Pod", s("Pod", "spec.restartPolicy", "X"), "spec.restartPolicy") == (
        'Unsupported value: "X": supported values: "Always", "OnFailure", "Never"')
    assert message("Pod", s("Pod", "spec.containers", []), "spec.containers") == "Required value"
    limits = s("Pod", "spec.containers.0.resources", {"requests": {"cpu": "2"},
                                                      "limits": {"cpu": "1"}})
    assert message("Pod", limits, "spec.containers[0].resources.requests[cpu]") == (
        'Invalid value: "2": must be less than or equal to cpu limit of 1')


def test_only_one_cause_per_bad_namespace_name() -> None:
    causes = causes_for("Namespace", s("Namespace", "metadata.name", "Team"))
    assert [c.field for c in causes] == ["metadata.name"]


def test_generate_name_may_end_in_a_dash() -> None:
    meta = {"generateName": "web-", "namespace": "default"}
    assert v.validate_object_meta(meta, namespaced=True) == []
    meta = {"generateName": "Web-", "namespace": "default"}
    assert [c.field for c in v.validate_object_meta(meta, True)] == ["metadata.generateName"]


def test_one_controller_owner() -> None:
    ref = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "uid": "u", "controller": True}
    meta = {"name": "p", "namespace": "d",
            "ownerReferences": [dict(ref, name="a"), dict(ref, name="b")]}
    assert [c.field for c in v.validate_object_meta(meta, True)] == ["metadata.ownerReferences"]


# --- updates ----------------------------------------------------------------------


def test_deployment_selector_is_immutable() -> None:
    old = deployment()
    new = mutate("Deployment", lambda o: (
        o["spec"].update(selector={"matchLabels": {"app": "web", "v": "2"}}),
        o["spec"]["template"]["metadata"]["labels"].update(v="2")))
    causes = causes_for("Deployment", new, old)
    assert [(c.field, c.reason) for c in causes] == [("spec.selector", "FieldValueInvalid")]
    assert causes[0].message.endswith("field is immutable")
    assert causes_for("Deployment", s("Deployment", "spec.replicas", 5), old) == []


def test_pod_update_allows_image_and_toleration_additions_only() -> None:
    old = pod()
    new_image = s("Pod", "spec.containers.0.image", "nginx:1.28")
    assert causes_for("Pod", new_image, old) == []
    added = mutate("Pod", lambda o: o["spec"].update(tolerations=[
        {"key": "k", "operator": "Exists", "effect": "NoSchedule"}]))
    assert causes_for("Pod", added, old) == []
    assert causes_for("Pod", old, added)[0].reason == "FieldValueForbidden"  # removal
    changed = s("Pod", "spec.restartPolicy", "Never")
    causes = causes_for("Pod", changed, old)
    assert [(c.field, c.reason) for c in causes] == [("spec", "FieldValueForbidden")]
    assert "spec.restartPolicy" in causes[0].message
    ports = s("Pod", "spec.containers.0.ports.0.containerPort", 81)
    assert [c.field for c in causes_for("Pod", ports, old)] == ["spec"]


def test_pod_active_deadline_may_only_shrink() -> None:
    old = s("Pod", "spec.activeDeadlineSeconds", 100)
    assert causes_for("Pod", s("Pod", "spec.activeDeadlineSeconds", 50), old) == []
    assert causes_for("Pod", s("Pod", "spec.activeDeadlineSeconds", 200), old) != []


def test_service_cluster_ip_is_immutable() -> None:
    old = s("Service", "spec.clusterIP", "127.10.0.5")
    assert causes_for("Service", s("Service", "spec.clusterIP", "127.10.0.5"), old) == []
    # An update that omits it keeps the allocated one (the API layer copies it).
    assert causes_for("Service", service(), old) == []
    causes = causes_for("Service", s("Service", "spec.clusterIP", "127.10.0.6"), old)
    assert [(c.field, c.reason) for c in causes] == [("spec.clusterIPs[0]", "FieldValueInvalid")]


@pytest.mark.parametrize("kind", ["ConfigMap", "Secret"])
def test_immutable_configs(kind: str) -> None:
    old = mutate(kind, lambda o: o.update(immutable=True))
    assert causes_for(kind, copy.deepcopy(old), old) == []
    changed = mutate(kind, lambda o: o.update(immutable=True, data={"b": b64("z")}))
    assert [(c.field, c.reason) for c in causes_for(kind, changed, old)] == [
        ("data", "FieldValueForbidden")]
    unset = BASES[kind]()
    assert ("immutable", "FieldValueForbidden") in [
        (c.field, c.reason) for c in causes_for(kind, unset, old)]


def test_secret_type_is_immutable() -> None:
    old = BASES["Secret"]()
    new = mutate("Secret", lambda o: o.update(type="example.com/other"))
    assert [(c.field, c.reason) for c in causes_for("Secret", new, old)] == [
        ("type", "FieldValueInvalid")]


# --- name checks, property-based --------------------------------------------------

label_chars = st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789")
dns_labels = st.builds(
    lambda first, middle, last: first + middle + last,
    label_chars, st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", max_size=40),
    label_chars)


@given(dns_labels)
def test_generated_labels_are_valid(name: str) -> None:
    assert v.dns1123_label_errors(name) == []
    assert v.dns1123_subdomain_errors(name) == []


@given(st.lists(dns_labels, min_size=1, max_size=5))
def test_dotted_labels_are_subdomains(parts: list[str]) -> None:
    name = ".".join(parts)
    assert (v.dns1123_subdomain_errors(name) == []) == (len(name) <= 253)
    if len(parts) > 1:
        assert v.dns1123_label_errors(name) != []


@given(dns_labels, st.sampled_from("ABCZ_ /:!"), st.integers(min_value=0, max_value=40))
def test_a_bad_character_anywhere_is_rejected(name: str, bad: str, at: int) -> None:
    broken = name[: at % (len(name) + 1)] + bad + name[at % (len(name) + 1):]
    assert v.dns1123_subdomain_errors(broken) != []
    assert v.dns1123_label_errors(broken) != []


@given(st.text(max_size=70))
def test_label_value_check_agrees_with_kubernetes_regex(value: str) -> None:
    import re

    ok = len(value) <= 63 and re.fullmatch(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?", value)
    assert (v.label_value_errors(value) == []) == bool(ok)


@pytest.mark.parametrize(("key", "ok"), [
    ("app", True), ("example.com/app", True), ("app.kubernetes.io/name", True),
    ("/app", False), ("a/b/c", False), ("Example.com/app", False), ("-app", False),
    ("a" * 63, True), ("a" * 64, False), ("example.com/", False),
])
def test_qualified_names(key: str, ok: bool) -> None:
    assert (v.qualified_name_errors(key) == []) == ok


def test_go_value_formats() -> None:
    assert v.go_value("a\"b") == '"a\\"b"'
    assert v.go_value(3) == "3"
    assert v.go_value(True) == "true"
    assert v.go_value(None) == "null"
    assert v.go_value({"b": "2", "a": "1"}) == 'map[string]string{"a":"1", "b":"2"}'
    assert v.go_value(["x"]) == '[]string{"x"}'
