"""The built-in registry: every kind with the facts discovery and kubectl rely on."""

from __future__ import annotations

from typing import Any

import pytest

from corral.resources.builtin import build_registry
from corral.resources.schemas import kind_schema
from corral.resources.types import ScaleSpec

REGISTRY = build_registry()

# (group, plural): kind, namespaced, short names, categories, subresources
FACTS: dict[tuple[str, str], tuple[str, bool, tuple[str, ...], tuple[str, ...], set[str]]] = {
    ("", "pods"): ("Pod", True, ("po",), ("all",),
                   {"status", "binding", "log", "exec", "portforward", "eviction"}),
    ("", "nodes"): ("Node", False, ("no",), (), {"status", "proxy"}),
    ("", "namespaces"): ("Namespace", False, ("ns",), (), {"status", "finalize"}),
    ("", "services"): ("Service", True, ("svc",), ("all",), {"status"}),
    ("", "endpoints"): ("Endpoints", True, ("ep",), (), set()),
    ("", "configmaps"): ("ConfigMap", True, ("cm",), (), set()),
    ("", "secrets"): ("Secret", True, (), (), set()),
    ("", "events"): ("Event", True, ("ev",), (), set()),
    ("", "serviceaccounts"): ("ServiceAccount", True, ("sa",), (), {"token"}),
    ("apps", "deployments"): ("Deployment", True, ("deploy",), ("all",), {"status", "scale"}),
    ("apps", "replicasets"): ("ReplicaSet", True, ("rs",), ("all",), {"status", "scale"}),
    ("coordination.k8s.io", "leases"): ("Lease", True, (), (), set()),
    ("apps", "daemonsets"): ("DaemonSet", True, ("ds",), ("all",), {"status"}),
    ("apps", "statefulsets"): ("StatefulSet", True, ("sts",), ("all",), {"status", "scale"}),
    ("apps", "controllerrevisions"): ("ControllerRevision", True, (), (), set()),
    ("batch", "jobs"): ("Job", True, (), ("all",), {"status"}),
    ("batch", "cronjobs"): ("CronJob", True, ("cj",), ("all",), {"status"}),
    ("autoscaling", "horizontalpodautoscalers"): ("HorizontalPodAutoscaler", True, ("hpa",), ("all",),
                                                  {"status"}),
    ("policy", "poddisruptionbudgets"): ("PodDisruptionBudget", True, ("pdb",), (), {"status"}),
    ("", "resourcequotas"): ("ResourceQuota", True, ("quota",), (), {"status"}),
    ("", "limitranges"): ("LimitRange", True, ("limits",), (), set()),
    ("rbac.authorization.k8s.io", "roles"): ("Role", True, (), (), set()),
    ("rbac.authorization.k8s.io", "rolebindings"): ("RoleBinding", True, (), (), set()),
    ("rbac.authorization.k8s.io", "clusterroles"): ("ClusterRole", False, (), (), set()),
    ("rbac.authorization.k8s.io", "clusterrolebindings"): ("ClusterRoleBinding", False, (), (), set()),
    ("authorization.k8s.io", "selfsubjectaccessreviews"): ("SelfSubjectAccessReview", False, (), (), set()),
    ("authorization.k8s.io", "selfsubjectrulesreviews"): ("SelfSubjectRulesReview", False, (), (), set()),
    ("authorization.k8s.io", "subjectaccessreviews"): ("SubjectAccessReview", False, (), (), set()),
    ("authentication.k8s.io", "selfsubjectreviews"): ("SelfSubjectReview", False, (), (), set()),
    ("certificates.k8s.io", "certificatesigningrequests"): ("CertificateSigningRequest", False, ("csr",), (),
                                                            {"status", "approval"}),
    ("scheduling.k8s.io", "priorityclasses"): ("PriorityClass", False, ("pc",), (), set()),
    ("node.k8s.io", "runtimeclasses"): ("RuntimeClass", False, (), (), set()),
    ("discovery.k8s.io", "endpointslices"): ("EndpointSlice", True, (), (), set()),
}
# The preferred version where a group's kinds are not served as v1.
VERSIONS = {"autoscaling": "v2"}


def test_exactly_the_built_in_kinds() -> None:
    assert {(rt.group, rt.plural) for rt in REGISTRY.all()} == set(FACTS)


@pytest.mark.parametrize("key", sorted(FACTS), ids=lambda k: k[1])
def test_facts(key: tuple[str, str]) -> None:
    kind, namespaced, short, categories, subresources = FACTS[key]
    version = VERSIONS.get(key[0], "v1")
    rt = REGISTRY.lookup(key[0], version, key[1])
    assert rt is not None
    assert (rt.kind, rt.namespaced, rt.short_names, rt.categories) == (
        kind, namespaced, short, categories)
    assert set(rt.subresources) == subresources
    assert rt.has_status == ("status" in subresources)
    assert (rt.scale is not None) == ("scale" in subresources)
    assert rt.singular == kind.lower()
    assert REGISTRY.by_kind(key[0], kind) is rt
    assert rt.schema is kind_schema(key[0], version, kind)
    assert rt.columns, "every kind prints a proper table"


def test_scale_paths() -> None:
    for plural in ("deployments", "replicasets"):
        rt = REGISTRY.lookup("apps", "v1", plural)
        assert rt is not None and rt.scale == ScaleSpec(
            ("spec", "replicas"), ("status", "replicas"), ("spec", "selector"))


def test_groups_for_discovery() -> None:
    groups = dict(REGISTRY.groups())
    assert groups == {group or "": [VERSIONS.get(group, "v1")] + (["v1"] if group in VERSIONS else [])
                      for group in {g for g, _ in FACTS}}
    assert groups["autoscaling"][0] == "v2"  # the preferred version comes first


EMPTY = {"metadata": {}, "spec": {}, "status": {}}


@pytest.mark.parametrize(("plural", "fields"), [
    ("pods", {"spec.nodeName", "spec.restartPolicy", "spec.schedulerName",
              "spec.serviceAccountName", "status.phase", "status.podIP",
              "status.nominatedNodeName"}),
    ("nodes", {"spec.unschedulable"}),
    ("events", {"involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
                "involvedObject.uid", "involvedObject.apiVersion",
                "involvedObject.resourceVersion", "involvedObject.fieldPath", "reason",
                "reportingComponent", "source", "type"}),
    ("secrets", {"type"}),
    ("namespaces", {"status.phase"}),
    ("replicasets", {"status.replicas"}),
])
def test_field_selector_names(plural: str, fields: set[str]) -> None:
    rt = next(t for t in REGISTRY.all() if t.plural == plural)
    assert fields <= set(rt.field_selectors(EMPTY))


def selectors(plural: str, obj: dict[str, Any]) -> dict[str, str]:
    rt = next(t for t in REGISTRY.all() if t.plural == plural)
    return rt.field_selectors(obj)


def test_field_selector_values() -> None:
    pod = {"spec": {"nodeName": "n1", "restartPolicy": "Always"},
           "status": {"phase": "Running", "podIP": "198.18.0.4"}}
    fields = selectors("pods", pod)
    assert (fields["spec.nodeName"], fields["status.phase"], fields["status.podIP"]) == (
        "n1", "Running", "198.18.0.4")
    assert selectors("pods", {"spec": {}})["spec.nodeName"] == ""  # unscheduled pods
    odd = selectors("pods", {"spec": None, "status": {"phase": None, "podIP": 7}})
    assert (odd["spec.nodeName"], odd["spec.hostNetwork"], odd["status.phase"], odd["status.podIP"]) == (
        "", "false", "", "7")
    assert selectors("pods", {"spec": {"hostNetwork": True}})["spec.hostNetwork"] == "true"
    assert selectors("nodes", {"spec": {"unschedulable": True}}) == {"spec.unschedulable": "true"}
    assert selectors("nodes", {}) == {"spec.unschedulable": "false"}
    ev = {"involvedObject": {"kind": "Pod", "name": "web", "uid": "u1", "namespace": "d"},
          "reason": "Started", "source": {"component": "kubelet"}, "type": "Normal"}
    fields = selectors("events", ev)
    assert (fields["involvedObject.name"], fields["involvedObject.uid"], fields["source"],
            fields["reason"]) == ("web", "u1", "kubelet", "Started")
    assert selectors("secrets", {"type": "kubernetes.io/tls"}) == {"type": "kubernetes.io/tls"}
    assert selectors("replicasets", {"status": {"replicas": 3}}) == {"status.replicas": "3"}


def test_registry_is_built_fresh_each_time() -> None:
    """No import-time registration: two registries never share state."""
    a, b = build_registry(), build_registry()
    assert a is not b and [t.plural for t in a.all()] == [t.plural for t in b.all()]
