import pytest

from corral.client import resources as r


def test_paths_follow_kubernetes_rest_layout():
    assert r.PODS.path("ns1", "p") == "/api/v1/namespaces/ns1/pods/p"
    assert r.PODS.path("ns1", "p", "binding") == "/api/v1/namespaces/ns1/pods/p/binding"
    assert r.PODS.path() == "/api/v1/pods"
    assert r.PODS.path("ns1") == "/api/v1/namespaces/ns1/pods"
    assert r.NODES.path(name="n1", subresource="status") == "/api/v1/nodes/n1/status"
    assert r.DEPLOYMENTS.path("d", "web", "scale") == "/apis/apps/v1/namespaces/d/deployments/web/scale"
    assert r.LEASES.path("kube-node-lease") == (
        "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
    )
    assert r.REPLICASETS.api_version == "apps/v1" and r.PODS.api_version == "v1"


@pytest.mark.parametrize(
    "call, field",
    [
        (lambda: r.NODES.path("ns", "n1"), "namespace"),
        (lambda: r.PODS.path("ns", "a/b"), "name"),
        (lambda: r.PODS.path("ns", ".."), "name"),
        (lambda: r.PODS.path("ns", None, "status"), "subresource"),
    ],
)
def test_bad_path_segments_name_the_field(call, field):
    with pytest.raises(ValueError, match=field):
        call()


def test_by_kind():
    assert r.by_kind("apps/v1", "ReplicaSet") is r.REPLICASETS
    with pytest.raises(KeyError):
        r.by_kind("v1", "Nope")
