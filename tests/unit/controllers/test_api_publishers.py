"""The objects in-cluster clients rely on: the kubernetes Service and its
endpoints, and the root CA ConfigMap."""

from __future__ import annotations

from corral.controllers.kubernetes_service import _differs, desired_objects, first_service_ip


def test_first_service_ip_is_the_ranges_first_host():
    assert first_service_ip("127.43.0.0/16") == "127.43.0.1"
    assert first_service_ip("10.96.0.0/12") == "10.96.0.1"


def test_service_and_endpoints_point_443_at_the_api_server():
    objs = desired_objects("127.43.0.1", "127.0.0.1", 6443)
    svc = objs["services"]
    assert svc["spec"]["clusterIP"] == "127.43.0.1" and "selector" not in svc["spec"]
    assert svc["spec"]["ports"] == [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]
    assert objs["endpoints"]["subsets"] == [{"addresses": [{"ip": "127.0.0.1"}],
                                            "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]}]
    eps = objs["endpointslices"]
    assert eps["addressType"] == "IPv4" and eps["endpoints"][0]["addresses"] == ["127.0.0.1"]
    assert eps["metadata"]["labels"]["kubernetes.io/service-name"] == "kubernetes"
    assert desired_objects("127.43.0.1", "::1", 6443)["endpointslices"]["addressType"] == "IPv6"


def test_only_owned_fields_count_as_drift():
    want = desired_objects("127.43.0.1", "127.0.0.1", 6443)
    svc = {**want["services"], "spec": {**want["services"]["spec"], "clusterIPs": ["127.43.0.1"]}}
    assert not _differs(svc, want["services"])
    moved = {**want["endpoints"], "subsets": [{"addresses": [{"ip": "127.0.0.2"}], "ports": []}]}
    assert _differs(moved, want["endpoints"])
    selected = {**svc, "spec": {**svc["spec"], "selector": {"app": "x"}}}
    assert _differs(selected, want["services"])
