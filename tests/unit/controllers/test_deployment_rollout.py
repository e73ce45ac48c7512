from datetime import UTC, datetime, timedelta

import pytest

from corral.controllers import deployment_rollout as ro

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def deploy(replicas=3, surge="25%", unavailable="25%", strategy="RollingUpdate", **extra):
    spec = {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "a"}]}},
            "strategy": {"type": strategy}}
    if strategy == "RollingUpdate":
        spec["strategy"]["rollingUpdate"] = {"maxSurge": surge, "maxUnavailable": unavailable}
    spec.update(extra)
    return {"metadata": {"name": "web", "generation": 1, "uid": "d1"}, "spec": spec, "status": {}}


def rs(name, replicas, available=None, created="2026-01-01T00:00:00Z", ann=None, status_replicas=None):
    available = replicas if available is None else available
    return {"metadata": {"name": name, "creationTimestamp": created, "annotations": ann or {}},
            "spec": {"replicas": replicas},
            "status": {"replicas": replicas if status_replicas is None else status_replicas,
                       "availableReplicas": available, "readyReplicas": available}}


@pytest.mark.parametrize("value,total,up,expected", [
    ("25%", 10, True, 3), ("25%", 10, False, 2), (2, 10, True, 2), ("0%", 5, True, 0), ("50%", 3, False, 1),
])
def test_scaled_value_rounding(value, total, up, expected):
    assert ro.scaled_value(value, total, up) == expected


def test_scaled_value_rejects_garbage():
    with pytest.raises(ValueError, match="IntOrString"):
        ro.scaled_value("abc%", 10, True)


def test_fenceposts_zero_zero_becomes_one_unavailable():
    assert ro.fenceposts(deploy(replicas=4, surge=0, unavailable=0)) == (0, 1)
    assert ro.fenceposts(deploy(replicas=4)) == (1, 1)
    assert ro.fenceposts(deploy(strategy="Recreate")) == (0, 0)


def test_template_hash_stable_and_collision_sensitive():
    t = deploy()["spec"]["template"]
    assert ro.template_hash(t) == ro.template_hash({"spec": t["spec"], "metadata": t["metadata"]})
    assert ro.template_hash(t) != ro.template_hash(t, 1)
    assert set(ro.template_hash(t)) <= set("bcdfghjklmnpqrstvwxz2456789")


def test_same_template_ignores_hash_label():
    d = deploy()
    r = {"spec": {"template": {"metadata": {"labels": {"app": "web", "pod-template-hash": "x"}},
                               "spec": d["spec"]["template"]["spec"]}}}
    assert ro.same_template(r, d)
    r["spec"]["template"]["spec"] = {"containers": [{"name": "c", "image": "b"}]}
    assert not ro.same_template(r, d)


def test_new_rs_grows_within_surge():
    d = deploy(replicas=4)  # surge 1
    old = rs("old", 4)
    new = rs("new", 0)
    assert ro.new_rs_target(d, [old, new], new) == 1
    new2 = rs("new", 1, available=0)
    assert ro.new_rs_target(d, [old, new2], new2) == 1  # 5 pods already: no room


def test_old_scaled_down_to_min_available():
    d = deploy(replicas=4)  # surge 1 unavailable 1 → min available 3
    old = rs("old", 4)
    new = rs("new", 1, available=0)
    targets = ro.old_rs_targets(d, [old, new], [old], new)
    # total 5, min 3, new unavailable 1 → budget 1; 4 available - 3 → scale down 1
    assert targets == {"old": 3}


def test_old_unhealthy_cleaned_first():
    d = deploy(replicas=4)
    old = rs("old", 4, available=2)
    new = rs("new", 1, available=1)
    # budget = 5 - 3 - 0 = 2 unhealthy cleaned; available 3 -3 → no more
    assert ro.old_rs_targets(d, [old, new], [old], new) == {"old": 2}


def test_proportional_scale_up_mid_rollout():
    d = deploy(replicas=20, surge=3, unavailable=2)
    ann = {ro.MAX_REPLICAS: "13", ro.DESIRED_REPLICAS: "10"}
    new = rs("new", 5, ann=ann, created="2026-01-02T00:00:00Z")
    old = rs("old", 8, ann=ann)
    sizes = ro.proportional_targets(d, new, [old])
    assert sum(sizes.values()) == 23
    # old: round(8*23/13)=14, new gets the remaining 4 (round(5*23/13)-5=4)
    assert sizes == {"old": 14, "new": 9}
    # scaling back down returns each to its share
    ann2 = {ro.MAX_REPLICAS: "23", ro.DESIRED_REPLICAS: "20"}
    down = ro.proportional_targets(
        deploy(replicas=10, surge=3, unavailable=2),
        rs("new", 9, ann=ann2, created="2026-01-02T00:00:00Z"), [rs("old", 14, ann=ann2)])
    assert down == {"old": 8, "new": 5}


def test_proportional_single_active_rs_takes_all():
    d = deploy(replicas=5)
    assert ro.proportional_targets(d, rs("new", 3), [rs("old", 0)]) == {"new": 5}


def test_is_scaling_event():
    d = deploy(replicas=5)
    assert ro.is_scaling_event(d, [rs("a", 3, ann={ro.DESIRED_REPLICAS: "3"})])
    assert not ro.is_scaling_event(d, [rs("a", 3, ann={ro.DESIRED_REPLICAS: "5"})])


def test_history_limit_deletes_oldest_revisions():
    d = deploy(revisionHistoryLimit=1)
    olds = [rs(f"r{i}", 0, ann={ro.REVISION: str(i)}) for i in (3, 1, 2)]
    assert [r["metadata"]["name"] for r in ro.history_to_delete(d, olds)] == ["r1", "r2"]


def test_status_and_complete_condition():
    d = deploy(replicas=2)
    new = rs("web-abc", 2)
    status = ro.rollout_status(d, new, [new], NOW)
    assert status["updatedReplicas"] == 2 and status["availableReplicas"] == 2
    avail = ro.get_condition(status, "Available")
    assert avail["status"] == "True" and avail["reason"] == "MinimumReplicasAvailable"
    prog = ro.get_condition(status, "Progressing")
    assert prog["reason"] == "NewReplicaSetAvailable"


def test_progress_deadline_exceeded():
    d = deploy(replicas=2, progressDeadlineSeconds=60)
    d["status"] = {"replicas": 2, "updatedReplicas": 0, "readyReplicas": 2, "availableReplicas": 2, "conditions": [
        {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated",
         "lastUpdateTime": "2026-01-01T00:00:00Z", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
    new = rs("web-new", 0, status_replicas=0)
    old = rs("web-old", 2)
    assert ro.get_condition(ro.rollout_status(d, new, [new, old], NOW + timedelta(seconds=30)),
                            "Progressing")["reason"] == "ReplicaSetUpdated"
    late = ro.rollout_status(d, new, [new, old], NOW + timedelta(seconds=61))
    cond = ro.get_condition(late, "Progressing")
    assert cond["status"] == "False" and cond["reason"] == "ProgressDeadlineExceeded"
    assert ro.requeue_for_deadline(d, d["status"], NOW + timedelta(seconds=30)) == pytest.approx(31.0)


def test_minimum_unavailable():
    d = deploy(replicas=4)
    r = rs("x", 4, available=2)
    cond = ro.get_condition(ro.calculate_status(d, r, [r], NOW), "Available")
    assert cond["status"] == "False" and cond["reason"] == "MinimumReplicasUnavailable"
