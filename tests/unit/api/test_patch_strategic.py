"""Strategic merge patch with the bodies kubectl sends, against our real kind schemas."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given
from hypothesis import strategies as st

from corral.api.errors import BadRequest
from corral.api.patch.merge_patch import merge_patch
from corral.api.patch.strategic import strategic_merge_patch
from corral.resources.schema import Schema
from corral.resources.schemas.apps_v1 import DEPLOYMENT
from corral.resources.schemas.core_v1 import NODE, SERVICE


def deployment(*containers: dict) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}, "annotations": {"a": "1"}},
        "spec": {
            "replicas": 1,
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": list(containers)},
            },
        },
    }


WEB = {"name": "web", "image": "nginx:1", "imagePullPolicy": "IfNotPresent",
       "ports": [{"containerPort": 80, "protocol": "TCP"}],
       "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
       "volumeMounts": [{"name": "data", "mountPath": "/data"}],
       "args": ["--one", "--two"]}
SIDECAR = {"name": "sidecar", "image": "busybox", "args": ["sleep", "1d"]}


def containers(obj: dict) -> list[dict]:
    return obj["spec"]["template"]["spec"]["containers"]


def patch(obj: dict, body: dict, schema: Schema | None = DEPLOYMENT) -> dict:
    before = copy.deepcopy(obj)
    out = strategic_merge_patch(obj, body, schema)
    assert obj == before, "the current object must not be modified"
    return out


def test_kubectl_apply_update_changes_only_the_image() -> None:
    live = deployment(WEB, SIDECAR)
    body = {"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "web"}],
        "containers": [{"image": "nginx:2", "name": "web"}]}}}}
    out = patch(live, body)
    assert containers(out) == [dict(WEB, image="nginx:2"), SIDECAR]
    assert out["spec"]["replicas"] == 1 and out["metadata"] == live["metadata"]


def test_kubectl_set_image() -> None:
    out = patch(deployment(SIDECAR, WEB),
                {"spec": {"template": {"spec": {"containers": [{"image": "nginx:3", "name": "web"}]}}}})
    assert [c["name"] for c in containers(out)] == ["sidecar", "web"]
    assert containers(out)[1] == dict(WEB, image="nginx:3")


def test_kubectl_rollout_restart() -> None:
    stamp = "2024-05-01T10:00:00Z"
    out = patch(deployment(WEB), {"spec": {"template": {"metadata": {"annotations": {
        "kubectl.kubernetes.io/restartedAt": stamp}}}}})
    assert out["spec"]["template"]["metadata"] == {
        "labels": {"app": "web"}, "annotations": {"kubectl.kubernetes.io/restartedAt": stamp}}


def test_kubectl_label_and_annotate() -> None:
    out = patch(deployment(WEB), {"metadata": {"labels": {"env": "prod"}, "annotations": {"a": None}}})
    assert out["metadata"]["labels"] == {"app": "web", "env": "prod"}
    assert out["metadata"]["annotations"] == {}


def test_kubectl_cordon_and_uncordon() -> None:
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}, "spec": {"podCIDR": "x"}}
    cordoned = patch(node, {"spec": {"unschedulable": True}}, NODE)
    assert cordoned["spec"] == {"podCIDR": "x", "unschedulable": True}
    assert patch(cordoned, {"spec": {"unschedulable": None}}, NODE)["spec"] == {"podCIDR": "x"}


def test_keyed_lists_merge_by_their_keys() -> None:
    body = {"spec": {"template": {"spec": {"containers": [{
        "name": "web",
        "env": [{"name": "B", "value": "22"}, {"name": "C", "value": "3"}],
        "ports": [{"containerPort": 80, "name": "http"}, {"containerPort": 443}],
        "volumeMounts": [{"mountPath": "/data", "readOnly": True}],
        "args": ["--three"],
    }]}}}}
    web = containers(patch(deployment(WEB), body))[0]
    assert web["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "22"},
                          {"name": "C", "value": "3"}]
    assert web["ports"] == [{"containerPort": 80, "protocol": "TCP", "name": "http"},
                            {"containerPort": 443}]
    assert web["volumeMounts"] == [{"name": "data", "mountPath": "/data", "readOnly": True}]
    assert web["args"] == ["--three"], "lists without a merge key are replaced"


def test_service_ports_merge_by_port() -> None:
    svc = {"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}], "type": "ClusterIP"}}
    out = patch(svc, {"spec": {"ports": [{"port": 80, "targetPort": 9090}]}}, SERVICE)
    assert out["spec"]["ports"] == [{"port": 80, "targetPort": 9090}, {"port": 443}]


def test_patch_delete_item_and_new_item() -> None:
    body = {"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "web"}, {"name": "new"}],
        "containers": [{"$patch": "delete", "name": "sidecar"}, {"name": "new", "image": "x"}]}}}}
    out = patch(deployment(WEB, SIDECAR), body)
    assert containers(out) == [WEB, {"name": "new", "image": "x"}]


def test_patch_replace_list() -> None:
    body = {"spec": {"template": {"spec": {"containers": [
        {"name": "only", "image": "y"}, {"$patch": "replace"}]}}}}
    assert containers(patch(deployment(WEB, SIDECAR), body)) == [{"name": "only", "image": "y"}]


def test_patch_replace_and_delete_map() -> None:
    out = patch(deployment(WEB), {"metadata": {"labels": {"$patch": "replace", "x": "y"}}})
    assert out["metadata"]["labels"] == {"x": "y"}
    out = patch(deployment(WEB), {"metadata": {"labels": {"$patch": "delete"}}})
    assert out["metadata"]["labels"] == {}
    out = patch(deployment(WEB), {"metadata": {"labels": {"$patch": "merge", "x": "y"}}})
    assert out["metadata"]["labels"] == {"app": "web", "x": "y"}


def test_set_element_order_keeps_server_only_items_in_place() -> None:
    a, b, x = {"name": "a", "image": "1"}, {"name": "b", "image": "1"}, {"name": "x", "image": "1"}
    body = {"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
        "containers": [{"name": "a", "image": "2"}]}}}}
    out = patch(deployment(a, x, b), body)
    assert [c["name"] for c in containers(out)] == ["x", "b", "a"]
    assert containers(out)[2]["image"] == "2"
    # Reordering alone, without the list in the patch.
    body = {"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}]}}}}
    assert [c["name"] for c in containers(patch(deployment(a, b), body))] == ["b", "a"]


def test_new_items_come_before_remaining_server_only_items() -> None:
    body = {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "1"}]}}}}
    out = patch(deployment({"name": "a"}, {"name": "b"}), body)
    assert [c["name"] for c in containers(out)] == ["c", "a", "b"]


def test_primitive_set_union_and_delete_from_primitive_list() -> None:
    obj = {"metadata": {"name": "x", "finalizers": ["a", "b"]}}
    out = patch(obj, {"metadata": {"finalizers": ["c", "a"]}})
    assert out["metadata"]["finalizers"] == ["c", "a", "b"]
    out = patch(obj, {"metadata": {
        "$deleteFromPrimitiveList/finalizers": ["a"],
        "$setElementOrder/finalizers": ["b", "c"],
        "finalizers": ["c"]}})
    assert out["metadata"]["finalizers"] == ["b", "c"]


def test_retain_keys_clears_the_other_union_member() -> None:
    body = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}
    assert patch(deployment(WEB), body)["spec"]["strategy"] == {"type": "Recreate"}


def test_directives_in_new_subtrees_are_processed_not_stored() -> None:
    body = {"spec": {"template": {"spec": {"volumes": [{"name": "v", "emptyDir": {}}],
                                           "$setElementOrder/volumes": [{"name": "v"}]}}}}
    out = patch(deployment(WEB), body)
    assert out["spec"]["template"]["spec"]["volumes"] == [{"name": "v", "emptyDir": {}}]
    assert not any(k.startswith("$") for k in out["spec"]["template"]["spec"])


@pytest.mark.parametrize("body", [
    {"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}},
    {"spec": {"template": {"spec": {"containers": ["web"]}}}},
    {"metadata": {"labels": {"$patch": "explode"}}},
    {"spec": {"template": {"spec": {"containers": [{"name": "w", "$patch": "bogus"}]}}}},
    {"spec": {"strategy": {"$retainKeys": "type"}}},
    {"metadata": {"$deleteFromPrimitiveList/finalizers": "a"}},
    {"spec": {"template": {"spec": {"$setElementOrder/containers": {"name": "web"}}}}},
])
def test_malformed_patches_are_bad_requests(body: dict) -> None:
    with pytest.raises(BadRequest):
        strategic_merge_patch(deployment(WEB), body, DEPLOYMENT)


def test_non_object_patch_is_bad_request() -> None:
    with pytest.raises(BadRequest):
        strategic_merge_patch({}, [1], DEPLOYMENT)


def test_preserve_unknown_subtree_behaves_like_merge_patch() -> None:
    schema = Schema(type="object", properties={"spec": Schema(preserve_unknown=True)})
    live = {"spec": {"items": [{"name": "a", "v": 1}], "m": {"k": 1}}}
    body = {"spec": {"items": [{"name": "a", "v": 2}], "m": {"j": 2}}}
    assert patch(live, body, schema) == merge_patch(live, body)


keys = st.text(max_size=4).filter(lambda k: not k.startswith("$"))
json_values = st.recursive(
    st.booleans() | st.integers() | st.text(max_size=4),
    lambda inner: st.lists(inner | st.none(), max_size=3)
    | st.dictionaries(keys, inner | st.none(), max_size=3),
    max_leaves=12,
)
documents = st.dictionaries(keys, json_values, max_size=5)


@given(current=documents, body=documents)
def test_without_schema_or_directives_equals_merge_patch(current: dict, body: dict) -> None:
    assert strategic_merge_patch(current, body, None) == merge_patch(current, body)
