"""Pure rules of the workload controllers: cron, Job counting and policy,
HPA arithmetic, disruption budgets, DaemonSet placement, auto-rollback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from corral.clock import format_timestamp
from corral.controllers import autorollback as ar
from corral.controllers import hpa_logic as hl
from corral.controllers import job_logic as jl
from corral.controllers.daemonset import node_of, pin_to_node, plan_rollout, should_run
from corral.controllers.pdb import budget_status
from corral.cron import CronError, parse_schedule

T0 = datetime(2026, 1, 1, 0, 0, 30, tzinfo=UTC)  # a Thursday


# -- cron --------------------------------------------------------------------------


@pytest.mark.parametrize(("spec", "zone", "after", "expected"), [
    ("*/1 * * * *", None, T0, datetime(2026, 1, 1, 0, 1, tzinfo=UTC)),
    ("@hourly", None, T0, datetime(2026, 1, 1, 1, 0, tzinfo=UTC)),
    ("@daily", None, T0, datetime(2026, 1, 2, 0, 0, tzinfo=UTC)),
    ("@weekly", None, T0, datetime(2026, 1, 4, 0, 0, tzinfo=UTC)),
    ("@monthly", None, T0, datetime(2026, 2, 1, 0, 0, tzinfo=UTC)),
    ("@yearly", None, T0, datetime(2027, 1, 1, 0, 0, tzinfo=UTC)),
    ("30 9 * * MON-FRI", None, T0, datetime(2026, 1, 1, 9, 30, tzinfo=UTC)),
    ("0 9 * * 1-5", "Europe/Paris", T0, datetime(2026, 1, 1, 8, 0, tzinfo=UTC)),
    ("0 0 13 * 5", None, T0, datetime(2026, 1, 2, 0, 0, tzinfo=UTC)),  # dom OR dow: Friday the 2nd
    ("0 0 13 * *", None, T0, datetime(2026, 1, 13, 0, 0, tzinfo=UTC)),
    ("15,45 */6 * JAN ?", None, T0, datetime(2026, 1, 1, 0, 15, tzinfo=UTC)),
    ("0 12 1 */3 *", None, T0, datetime(2026, 1, 1, 12, 0, tzinfo=UTC)),
])
def test_cron_next(spec: str, zone: str | None, after: datetime, expected: datetime) -> None:
    assert parse_schedule(spec, zone).next_after(after) == expected


@pytest.mark.parametrize("spec", ["", "* * * *", "60 * * * *", "* 24 * * *", "a b c d e",
                                  "*/0 * * * *", "5-1 * * * *", "TZ=UTC * * * * *", "@sometimes"])
def test_cron_rejects(spec: str) -> None:
    with pytest.raises(CronError):
        parse_schedule(spec)


def test_cron_unknown_zone() -> None:
    with pytest.raises(CronError, match="unknown time zone"):
        parse_schedule("* * * * *", "Mars/Olympus")


def test_cron_missed_counts_and_latest() -> None:
    s = parse_schedule("* * * * *")
    latest, count = s.most_recent(T0 - timedelta(minutes=10), T0)
    assert (latest, count) == (datetime(2026, 1, 1, 0, 0, tzinfo=UTC), 10)
    latest, count = s.most_recent(T0 - timedelta(days=3), T0)
    assert count == 101 and latest == datetime(2026, 1, 1, 0, 0, tzinfo=UTC)


# -- jobs --------------------------------------------------------------------------


def pod(name: str, phase: str, *, index: int | None = None, code: int | None = None,
        ready: bool = False, finished: datetime | None = None, restarts: int = 0) -> dict:
    md: dict = {"name": name, "namespace": "ns", "creationTimestamp": format_timestamp(T0)}
    if index is not None:
        md["annotations"] = {jl.INDEX_ANNOTATION: str(index)}
    status: dict = {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    cs: dict = {"name": "main", "restartCount": restarts, "state": {}}
    if code is not None:
        cs["state"] = {"terminated": {"exitCode": code, "finishedAt": format_timestamp(finished or T0)}}
    status["containerStatuses"] = [cs]
    return {"metadata": md, "status": status}


def job(**spec: object) -> dict:
    base = {"completions": 5, "parallelism": 2, "backoffLimit": 6, "completionMode": "NonIndexed",
            "template": {"spec": {"restartPolicy": "Never"}}}
    base.update(spec)
    return {"metadata": {"name": "j", "namespace": "ns"}, "spec": base, "status": {}}


def test_job_counts_and_wanted() -> None:
    j = job()
    pods = [pod("a", "Succeeded", code=0), pod("b", "Running", ready=True), pod("c", "Failed", code=1)]
    view = jl.view_of(j, pods)
    assert (view.succeeded, view.failed, len(view.active), view.ready) == (1, 1, 1, 1)
    assert jl.wanted_active(j, view) == 2
    assert not jl.is_complete(j, view)
    done = jl.view_of(j, [pod(str(i), "Succeeded", code=0) for i in range(5)])
    assert jl.is_complete(j, done) and jl.wanted_active(j, done) == 0


def test_job_counts_never_go_down_when_pods_vanish() -> None:
    j = job()
    j["status"] = {"succeeded": 3, "failed": 1}
    view = jl.view_of(j, [])
    assert (view.succeeded, view.failed) == (3, 1)


def test_backoff_limit_and_exponential_delay() -> None:
    j = job(backoffLimit=1)
    one = jl.view_of(j, [pod("a", "Failed", code=1, finished=T0)])
    assert jl.failure_reason(j, one, T0) is None
    assert jl.backoff_left(one, T0) == 10.0
    two = jl.view_of(j, [pod("a", "Failed", code=1, finished=T0), pod("b", "Failed", code=1, finished=T0)])
    assert jl.backoff_left(two, T0 + timedelta(seconds=5)) == 15.0
    assert jl.failure_reason(j, two, T0) == ("BackoffLimitExceeded", "Job has reached the specified backoff limit")


def test_active_deadline() -> None:
    j = job(activeDeadlineSeconds=30)
    j["status"] = {"startTime": format_timestamp(T0)}
    view = jl.view_of(j, [])
    assert jl.failure_reason(j, view, T0 + timedelta(seconds=10)) is None
    assert jl.failure_reason(j, view, T0 + timedelta(seconds=31))[0] == "DeadlineExceeded"


def test_pod_failure_policy_actions() -> None:
    rules = {"rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}},
                       {"action": "Ignore", "onExitCodes": {"operator": "In", "values": [3]}}]}
    j = job(podFailurePolicy=rules, backoffLimit=0)
    ignored = jl.view_of(j, [pod("a", "Failed", code=3)])
    assert ignored.failed == 0 and jl.failure_reason(j, ignored, T0) is None
    fatal = jl.view_of(j, [pod("b", "Failed", code=42)])
    reason, message = jl.failure_reason(j, fatal, T0)
    assert reason == "PodFailurePolicy"
    assert message == "Container main for pod ns/b failed with exit code 42 matching FailJob rule at index 0"
    counted = jl.view_of(j, [pod("c", "Failed", code=1)])
    assert jl.failure_reason(j, counted, T0)[0] == "BackoffLimitExceeded"


def test_indexed_job() -> None:
    j = job(completionMode="Indexed", completions=4, parallelism=2)
    pods = [pod("a", "Succeeded", index=0, code=0), pod("b", "Running", index=2)]
    view = jl.view_of(j, pods)
    assert view.completed_indexes == {0}
    assert jl.indexes_to_start(j, view, jl.wanted_active(j, view) - len(view.active)) == [1]
    assert jl.format_indexes({0, 1, 2, 5, 7, 8}) == "0-2,5,7-8"
    assert jl.parse_indexes("0-2,5,7-8", 8) == {0, 1, 2, 5, 7}


# -- hpa ---------------------------------------------------------------------------


def running(name: str, cpu_request: str = "100m") -> dict:
    return {"metadata": {"name": name}, "spec": {"containers": [{"resources": {"requests": {"cpu": cpu_request}}}]},
            "status": {"phase": "Running"}}


def hpa(**behavior: object) -> dict:
    return {"spec": {"minReplicas": 1, "maxReplicas": 10, "behavior": behavior,
                     "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                         "type": "Utilization", "averageUtilization": 50}}}]}}


def test_hpa_proposal_and_tolerance() -> None:
    metric = hpa()["spec"]["metrics"][0]
    pods = [running("a"), running("b")]
    busy = hl.propose(metric, 2, pods, {"a": {"cpu": 100.0}, "b": {"cpu": 100.0}})
    assert busy and busy.replicas == 4 and busy.status["resource"]["current"]["averageUtilization"] == 100
    calm = hl.propose(metric, 2, pods, {"a": {"cpu": 52.0}, "b": {"cpu": 50.0}})
    assert calm and calm.replicas == 2  # within 10%
    assert hl.propose(metric, 2, pods, {}) is None


def test_hpa_rate_limits_and_stabilization() -> None:
    h = hpa()
    history = hl.History()
    now = T0
    assert hl.desired_replicas(h, history, 40, 1, now) == (5, "ScaleUpLimit")  # +4 pods per 15 s
    history = hl.History()
    # scale down waits for the 300 s window: the earlier high recommendation holds
    hl.desired_replicas(h, history, 8, 8, now)
    assert hl.desired_replicas(h, history, 2, 8, now + timedelta(seconds=60))[0] == 8
    assert hl.desired_replicas(h, history, 2, 8, now + timedelta(seconds=400))[0] == 2
    quick = hpa(scaleDown={"stabilizationWindowSeconds": 0})
    assert hl.desired_replicas(quick, hl.History(), 2, 8, now)[0] == 2
    assert hl.desired_replicas(quick, hl.History(), 0, 8, now) == (1, "TooFewReplicas")


# -- disruption budgets ------------------------------------------------------------


def ready_pod(name: str, ready: bool = True) -> dict:
    return {"metadata": {"name": name}, "status": {"phase": "Running", "conditions": [
        {"type": "Ready", "status": "True" if ready else "False"}]}}


@pytest.mark.parametrize(("spec", "expected", "allowed", "desired"), [
    ({"minAvailable": 2}, 3, 1, 2),
    ({"minAvailable": 3}, 3, 0, 3),
    ({"maxUnavailable": 1}, 3, 1, 2),
    ({"minAvailable": "50%"}, 3, 1, 2),
    ({"maxUnavailable": "0%"}, 3, 0, 3),
])
def test_budget_status(spec: dict, expected: int, allowed: int, desired: int) -> None:
    pdb = {"metadata": {"generation": 1}, "spec": spec}
    status = budget_status(pdb, [ready_pod("a"), ready_pod("b"), ready_pod("c")], expected, T0)
    assert (status["disruptionsAllowed"], status["desiredHealthy"], status["currentHealthy"]) == (
        allowed, desired, 3)


def test_budget_counts_recently_evicted_as_unhealthy() -> None:
    pdb = {"metadata": {"generation": 1}, "spec": {"minAvailable": 1},
           "status": {"disruptedPods": {"a": format_timestamp(T0)}}}
    status = budget_status(pdb, [ready_pod("a"), ready_pod("b")], 2, T0 + timedelta(seconds=5))
    assert status["currentHealthy"] == 1 and status["disruptionsAllowed"] == 0


# -- daemonset placement -----------------------------------------------------------


def node(name: str, labels: dict | None = None, taints: list | None = None, unschedulable: bool = False) -> dict:
    return {"metadata": {"name": name, "labels": labels or {}},
            "spec": {"taints": taints or [], "unschedulable": unschedulable}}


def test_should_run() -> None:
    ds = {"spec": {"template": {"spec": {"nodeSelector": {"disk": "ssd"}}}}}
    assert should_run(ds, node("a", {"disk": "ssd"}))
    assert not should_run(ds, node("b"))
    plain = {"spec": {"template": {"spec": {}}}}
    assert should_run(plain, node("c", unschedulable=True,
                                  taints=[{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]))
    assert not should_run(plain, node("d", taints=[{"key": "gpu", "value": "x", "effect": "NoSchedule"}]))


def test_pods_are_pinned_by_affinity_not_node_name() -> None:
    spec: dict = {}
    pin_to_node(spec, "n1")
    p = {"spec": spec}
    assert "nodeName" not in spec and node_of(p) == "n1"
    term = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]
    assert term["matchFields"] == [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]


def test_daemonset_rollout_respects_max_unavailable() -> None:
    ds = {"spec": {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}}}

    def old(name: str) -> dict:
        p = ready_pod(name)
        p["metadata"]["labels"] = {"controller-revision-hash": "old"}
        return p
    by_node = {"a": [old("pa")], "b": [old("pb")], "c": [old("pc")]}
    deletes, surge = plan_rollout(ds, by_node, "new", T0)
    assert len(deletes) == 1 and surge == []


# -- auto-rollback ------------------------------------------------------------------


def test_auto_rollback_decisions() -> None:
    d = {"metadata": {"annotations": {ar.ANNOTATION: "true"}}, "spec": {},
         "status": {"conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                                    "message": 'ReplicaSet "web-2" has timed out progressing.'}]}}
    new = {"metadata": {"name": "web-2", "annotations": {"deployment.kubernetes.io/revision": "2"}}}
    old = {"metadata": {"name": "web-1", "annotations": {"deployment.kubernetes.io/revision": "1"}},
           "spec": {"template": {"metadata": {"labels": {"app": "web", "pod-template-hash": "h1"}}}}}
    assert ar.enabled(d)
    assert "progress deadline" in ar.failure(d, new, [])
    assert ar.last_good(d, new, [old]) is old
    back = ar.rolled_back({"metadata": {}, "spec": {"template": {}}}, old, 2)
    assert back["spec"]["template"]["metadata"]["labels"] == {"app": "web"}
    crashing = {"metadata": {"name": "p"}, "status": {"containerStatuses": [
        {"name": "c", "restartCount": 1, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}}
    fresh = dict(d, status={})
    assert "crash-looping" in ar.failure(fresh, new, [crashing])
    assert ar.failure(fresh, new, []) is None
