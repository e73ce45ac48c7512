"""Server-side apply and managedFields, against the real Deployment schema."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given
from hypothesis import strategies as st

from corral.api.errors import BadRequest, Conflict
from corral.api.patch.apply import server_side_apply
from corral.api.patch.fieldpath import from_fields_v1, to_fields_v1
from corral.api.patch.managed_fields import update_managed_fields
from corral.resources.schemas.apps_v1 import DEPLOYMENT

T0, T1, T2 = "2024-05-01T10:00:00Z", "2024-05-01T10:01:00Z", "2024-05-01T10:02:00Z"


def config(replicas: int | None = 1, *containers: dict, labels: dict | None = None) -> dict:
    spec: dict = {
        "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}},
                     "spec": {"containers": list(containers) or [{"name": "web", "image": "nginx:1"}]}},
    }
    if replicas is not None:
        spec["replicas"] = replicas
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "labels": labels or {"app": "web"}},
            "spec": spec}


def apply(current: dict | None, cfg: dict, manager: str = "kubectl", *, force: bool = False,
          now: str = T0) -> dict:
    before = copy.deepcopy(current)
    out = server_side_apply(current, cfg, DEPLOYMENT, manager=manager, force=force, now=now)
    assert current == before, "the live object must not be modified"
    return out


def entry(obj: dict, manager: str, operation: str | None = None) -> dict:
    found = [e for e in obj["metadata"]["managedFields"] if e["manager"] == manager
             and (operation is None or e["operation"] == operation)]
    assert len(found) == 1, obj["metadata"]["managedFields"]
    return found[0]


def test_apply_creates_and_records_fields_v1() -> None:
    out = apply(None, config(2))
    assert out["spec"]["replicas"] == 2 and out["metadata"]["name"] == "web"
    assert out["metadata"]["managedFields"] == [{
        "manager": "kubectl", "operation": "Apply", "apiVersion": "apps/v1", "time": T0,
        "fieldsType": "FieldsV1",
        "fieldsV1": {
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {
                "f:replicas": {},
                "f:selector": {},
                "f:template": {
                    "f:metadata": {"f:labels": {"f:app": {}}},
                    "f:spec": {"f:containers": {'k:{"name":"web"}': {
                        ".": {}, "f:image": {}, "f:name": {}}}},
                },
            },
        },
    }]
    assert apply({}, config(2)) == out


def test_reapply_changes_own_fields_without_conflict() -> None:
    live = apply(None, config(2))
    out = apply(live, config(2, {"name": "web", "image": "nginx:2"}), now=T1)
    assert out["spec"]["template"]["spec"]["containers"] == [{"name": "web", "image": "nginx:2"}]
    assert entry(out, "kubectl")["time"] == T1


def created_by_client_side_apply() -> dict:
    obj = config(1)
    obj["metadata"]["annotations"] = {"kubectl.kubernetes.io/last-applied-configuration": "{}"}
    return update_managed_fields(None, obj, "kubectl-client-side-apply", "Update", "apps/v1",
                                 T0, DEPLOYMENT)


def test_conflict_with_another_manager_is_409_with_kubernetes_message() -> None:
    live = created_by_client_side_apply()
    with pytest.raises(Conflict) as exc:
        apply(live, config(3))
    assert exc.value.code == 409
    assert exc.value.message == (
        'Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" '
        "using apps/v1: .spec.replicas")
    cause = exc.value.status()["details"]["causes"][0]
    assert cause == {"reason": "FieldManagerConflict", "field": ".spec.replicas",
                     "message": 'conflict with "kubectl-client-side-apply" using apps/v1'}


def test_same_values_are_shared_not_conflicting() -> None:
    live = created_by_client_side_apply()
    out = apply(live, config(1))
    csa = from_fields_v1(entry(out, "kubectl-client-side-apply")["fieldsV1"])
    mine = from_fields_v1(entry(out, "kubectl")["fieldsV1"])
    assert ("f:spec", "f:replicas") in csa and ("f:spec", "f:replicas") in mine


def test_force_takes_ownership() -> None:
    live = created_by_client_side_apply()
    out = apply(live, config(3), force=True)
    assert out["spec"]["replicas"] == 3
    csa = from_fields_v1(entry(out, "kubectl-client-side-apply")["fieldsV1"])
    assert ("f:spec", "f:replicas") not in csa
    assert ("f:metadata", "f:annotations", "f:kubectl.kubernetes.io/last-applied-configuration") in csa


def test_several_conflicts_are_listed_by_manager() -> None:
    live = created_by_client_side_apply()
    with pytest.raises(Conflict) as exc:
        apply(live, config(3, {"name": "web", "image": "nginx:9"}))
    assert exc.value.message == (
        'Apply failed with 2 conflicts: conflicts with "kubectl-client-side-apply" using apps/v1:\n'
        "- .spec.replicas\n"
        '- .spec.template.spec.containers[name="web"].image')
    assert len(exc.value.causes) == 2


def test_fields_no_longer_applied_are_removed() -> None:
    live = apply(None, config(2, labels={"app": "web", "tier": "front"}))
    out = apply(live, config(None), now=T1)
    assert "replicas" not in out["spec"]
    assert out["metadata"]["labels"] == {"app": "web"}
    assert ("f:spec", "f:replicas") not in from_fields_v1(entry(out, "kubectl")["fieldsV1"])


def test_fields_another_manager_also_owns_are_kept() -> None:
    live = apply(None, config(2))
    scaled = copy.deepcopy(live)
    scaled["spec"]["replicas"] = 5
    scaled = update_managed_fields(live, scaled, "kubectl", "Update", "apps/v1", T1, DEPLOYMENT)
    out = apply(scaled, config(None), now=T2)
    assert out["spec"]["replicas"] == 5


def test_containers_merge_by_name_and_others_items_survive() -> None:
    web = {"name": "web", "image": "nginx:1"}
    live = apply(None, config(1, web, {"name": "old", "image": "x"}))
    sidecar = copy.deepcopy(live)
    sidecar["spec"]["template"]["spec"]["containers"].append({"name": "injected", "image": "y"})
    sidecar = update_managed_fields(live, sidecar, "injector", "Update", "apps/v1", T1, DEPLOYMENT)
    out = apply(sidecar, config(1, web), now=T2)
    names = [c["name"] for c in out["spec"]["template"]["spec"]["containers"]]
    assert names == ["web", "injected"]


def test_keyed_list_order_follows_structured_merge_diff() -> None:
    a, b, c = ({"name": n, "image": "i"} for n in "abc")
    live = apply(None, config(1, a, b, c), manager="other")
    out = apply(live, config(1, c, a))
    assert [x["name"] for x in out["spec"]["template"]["spec"]["containers"]] == ["b", "c", "a"]


def test_set_and_atomic_lists() -> None:
    live = apply(None, config(1, {"name": "web", "image": "i", "args": ["a", "b"]}), manager="m1")
    live["metadata"]["finalizers"] = ["x"]
    live = update_managed_fields(None, live, "m1", "Update", "apps/v1", T0, DEPLOYMENT)
    cfg = config(1, {"name": "web", "image": "i", "args": ["c"]})
    cfg["metadata"]["finalizers"] = ["y"]
    with pytest.raises(Conflict) as exc:
        apply(live, cfg)
    assert ".spec.template.spec.containers[name=\"web\"].args" in exc.value.message
    out = apply(live, cfg, force=True)
    assert out["metadata"]["finalizers"] == ["x", "y"]
    assert out["spec"]["template"]["spec"]["containers"][0]["args"] == ["c"]
    mine = from_fields_v1(entry(out, "kubectl")["fieldsV1"])
    assert ("f:metadata", "f:finalizers", 'v:"y"') in mine


def test_conflict_with_an_applier_names_it_without_version() -> None:
    live = apply(None, config(2), manager="argocd")
    with pytest.raises(Conflict) as exc:
        apply(live, config(3))
    assert exc.value.message == 'Apply failed with 1 conflict: conflict with "argocd": .spec.replicas'


def test_live_object_without_managed_fields_belongs_to_before_first_apply() -> None:
    live = config(1)
    with pytest.raises(Conflict) as exc:
        apply(live, config(4))
    assert '"before-first-apply"' in exc.value.message


def test_ports_applied_without_protocol_match_the_defaulted_item() -> None:
    port = {"containerPort": 80, "protocol": "TCP"}
    live = apply(None, config(1, {"name": "web", "image": "i", "ports": [port]}), manager="m")
    out = apply(live, config(1, {"name": "web", "image": "i", "ports": [{"containerPort": 80}]}))
    assert out["spec"]["template"]["spec"]["containers"][0]["ports"] == [port]


@pytest.mark.parametrize("cfg", [
    ["not", "an", "object"],
    {"metadata": {"managedFields": []}},
    {"metadata": "x"},
    {"spec": {"template": {"spec": {"containers": [{"image": "no-name"}]}}}},
    {"spec": {"template": {"spec": {"containers": [{"name": "a"}, {"name": "a"}]}}}},
])
def test_bad_apply_configurations(cfg: object) -> None:
    with pytest.raises(BadRequest):
        server_side_apply(None, cfg, DEPLOYMENT, manager="kubectl", force=False, now=T0)


def test_update_records_and_steals_fields() -> None:
    created = update_managed_fields(None, config(1), "creator", "Update", "apps/v1", T0, DEPLOYMENT)
    creator = from_fields_v1(entry(created, "creator")["fieldsV1"])
    assert ("f:spec", "f:replicas") in creator
    assert not any(p[0] in ("f:apiVersion", "f:kind") for p in creator)
    assert ("f:metadata", "f:name") not in creator
    scaled = copy.deepcopy(created)
    scaled["spec"]["replicas"] = 3
    del scaled["metadata"]["labels"]
    out = update_managed_fields(created, scaled, "scaler", "Update", "apps/v1", T1, DEPLOYMENT)
    assert from_fields_v1(entry(out, "scaler")["fieldsV1"]) == {("f:spec", "f:replicas")}
    creator = from_fields_v1(entry(out, "creator")["fieldsV1"])
    assert ("f:spec", "f:replicas") not in creator
    assert ("f:metadata", "f:labels", "f:app") not in creator
    assert entry(out, "creator")["time"] == T0 and entry(out, "scaler")["time"] == T1


def test_no_op_update_keeps_entries() -> None:
    created = update_managed_fields(None, config(1), "creator", "Update", "apps/v1", T0, DEPLOYMENT)
    same = update_managed_fields(created, copy.deepcopy(created), "other", "Update", "apps/v1",
                                 T1, DEPLOYMENT)
    assert same["metadata"]["managedFields"] == created["metadata"]["managedFields"]


def test_client_can_reset_managed_fields() -> None:
    created = update_managed_fields(None, config(1), "creator", "Update", "apps/v1", T0, DEPLOYMENT)
    reset = copy.deepcopy(created)
    reset["metadata"]["managedFields"] = []
    reset["spec"]["replicas"] = 2
    out = update_managed_fields(created, reset, "me", "Update", "apps/v1", T1, DEPLOYMENT)
    assert [e["manager"] for e in out["metadata"]["managedFields"]] == ["me"]


def test_update_entries_are_capped() -> None:
    obj = update_managed_fields(None, {"metadata": {"labels": {}}}, "m0", "Update", "v1", T0, None)
    for i in range(1, 13):
        new = copy.deepcopy(obj)
        new["metadata"]["labels"][f"l{i}"] = "x"
        obj = update_managed_fields(obj, new, f"m{i}", "Update", "v1", f"2024-05-01T10:{i:02}:00Z", None)
    managers = [e["manager"] for e in obj["metadata"]["managedFields"]]
    assert len(managers) == 10 and "ancient-changes" in managers and "m12" in managers


def test_entries_sort_apply_first_then_by_time() -> None:
    live = created_by_client_side_apply()
    out = apply(live, config(1), now=T1)
    assert [(e["operation"], e["manager"]) for e in out["metadata"]["managedFields"]] == [
        ("Apply", "kubectl"), ("Update", "kubectl-client-side-apply")]


elements = st.sampled_from(["f:a", "f:b", 'k:{"name":"x"}', 'v:"s"', "i:0"])
paths = st.lists(elements, min_size=1, max_size=4).map(tuple)


@given(st.sets(paths, max_size=8))
def test_fields_v1_round_trip(fields: set) -> None:
    assert from_fields_v1(to_fields_v1(fields)) == fields
