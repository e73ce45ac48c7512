from datetime import UTC, datetime

from corral.controllers.replicaset import (
    pod_from_template,
    pods_to_delete,
    replica_set_status,
    slow_start_batches,
)


def pod(name, node="", phase="Pending", ready=False, restarts=0, created="2026-01-01T00:00:00Z",
        ready_at="2026-01-01T00:00:00Z", labels=None):
    conds = [{"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": ready_at}]
    return {"metadata": {"name": name, "creationTimestamp": created, "labels": labels or {"app": "web"}},
            "spec": {"nodeName": node},
            "status": {"phase": phase, "conditions": conds,
                       "containerStatuses": [{"restartCount": restarts}]}}


def test_slow_start():
    assert slow_start_batches(10) == [1, 2, 4, 3]
    assert slow_start_batches(1) == [1]
    assert slow_start_batches(0) == []


def test_deletion_ranking():
    pods = [
        pod("running-ready-old", "n", "Running", True, created="2026-01-01T00:00:00Z"),
        pod("unscheduled", ""),
        pod("pending-scheduled", "n"),
        pod("running-notready", "n", "Running"),
        pod("running-ready-restarts", "n", "Running", True, restarts=3),
        pod("running-ready-new", "n", "Running", True, created="2026-01-01T00:05:00Z"),
    ]
    order = [p["metadata"]["name"] for p in pods_to_delete(pods, 6)]
    assert order[:3] == ["unscheduled", "pending-scheduled", "running-notready"]
    assert order[3] == "running-ready-restarts"
    assert order[4:] == ["running-ready-new", "running-ready-old"]


def test_ready_for_less_time_deleted_first():
    a = pod("long", "n", "Running", True, ready_at="2026-01-01T00:00:00Z")
    b = pod("short", "n", "Running", True, ready_at="2026-01-01T00:10:00Z")
    assert pods_to_delete([a, b], 1)[0]["metadata"]["name"] == "short"


def test_status_honours_min_ready_seconds():
    rs = {"metadata": {"generation": 4}, "spec": {"minReadySeconds": 30, "template": {
        "metadata": {"labels": {"app": "web", "tier": "x"}}}}}
    pods = [pod("a", "n", "Running", True, ready_at="2026-01-01T00:00:00Z", labels={"app": "web", "tier": "x"}),
            pod("b", "n", "Running", True, ready_at="2026-01-01T00:00:50Z")]
    status = replica_set_status(rs, pods, datetime(2026, 1, 1, 0, 1, tzinfo=UTC))
    assert status == {"replicas": 2, "fullyLabeledReplicas": 1, "readyReplicas": 2,
                      "availableReplicas": 1, "observedGeneration": 4}


def test_pod_from_template():
    rs = {"metadata": {"name": "web-abc", "namespace": "ns", "uid": "u1"},
          "spec": {"template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": []}}}}
    p = pod_from_template(rs)
    assert p["metadata"]["generateName"] == "web-abc-"
    ref = p["metadata"]["ownerReferences"][0]
    assert ref == {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-abc", "uid": "u1",
                   "controller": True, "blockOwnerDeletion": True}
