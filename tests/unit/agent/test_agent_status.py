"""Pod status computation (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from corral.agent.status import (
    ContainerView,
    backoff_message,
    pod_phase,
    pod_status,
    qos_class,
    running,
    terminated,
    waiting,
)
from corral.runtime.protocol import ContainerState

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def exited(code: int, signal: int | None = None) -> ContainerState:
    return ContainerState(
        "exited", T0, exit_code=code, signal=signal, finished_at=T0 + timedelta(seconds=5)
    )


def view(name: str, state: dict, last: dict | None = None) -> ContainerView:
    return ContainerView(name=name, state=state, last_state=last or {})


RUN = running(T0)
OK = terminated(exited(0))
BAD = terminated(exited(1))
NEW = waiting("ContainerCreating")


@pytest.mark.parametrize(
    ("policy", "states", "phase"),
    [
        ("Always", [NEW], "Pending"),
        ("Always", [RUN, NEW], "Pending"),
        ("Always", [RUN, RUN], "Running"),
        ("Always", [OK], "Running"),
        ("Always", [BAD, OK], "Running"),
        ("OnFailure", [OK, OK], "Succeeded"),
        ("OnFailure", [OK, BAD], "Running"),
        ("Never", [OK, OK], "Succeeded"),
        ("Never", [OK, BAD], "Failed"),
        ("Never", [RUN, BAD], "Running"),
    ],
)
def test_phase(policy, states, phase):
    views = [view(f"c{i}", s) for i, s in enumerate(states)]
    assert pod_phase(policy, views, []) == phase


def test_crash_loop_waiting_with_last_state_counts_as_stopped():
    v = view("web", waiting("CrashLoopBackOff", "back-off"), last=BAD)
    assert pod_phase("Always", [v], []) == "Running"


def test_init_containers_gate_the_phase():
    main = [view("web", waiting("PodInitializing"))]
    assert pod_phase("Always", main, [view("init", RUN)]) == "Pending"
    assert pod_phase("Never", main, [view("init", BAD)]) == "Failed"
    assert pod_phase("Always", [view("web", RUN)], [view("init", OK)]) == "Running"


def test_terminated_state_fields():
    state = terminated(exited(137, signal=9), "process://abc")["terminated"]
    assert state == {
        "exitCode": 137,
        "reason": "Error",
        "signal": 9,
        "startedAt": "2026-01-01T00:00:00Z",
        "finishedAt": "2026-01-01T00:00:05Z",
        "containerID": "process://abc",
    }
    assert terminated(exited(0))["terminated"]["reason"] == "Completed"


POD = {
    "metadata": {"name": "web-abc", "namespace": "default", "uid": "u1"},
    "spec": {"restartPolicy": "Always", "containers": [{"name": "web"}]},
    "status": {"phase": "Pending"},
}


def status_for(pod, views, now=T0):
    return pod_status(
        pod,
        views,
        [],
        host_ip="127.0.0.1",
        pod_ip="127.0.0.1",
        start_time="2026-01-01T00:00:00Z",
        now=now,
    )


def test_running_pod_is_ready():
    v = view("web", RUN)
    v.container_id = "process://x"
    st = status_for(POD, [v])
    assert st["phase"] == "Running"
    assert {c["type"]: c["status"] for c in st["conditions"]} == {
        "PodScheduled": "True",
        "Initialized": "True",
        "ContainersReady": "True",
        "Ready": "True",
    }
    (cs,) = st["containerStatuses"]
    assert cs["ready"] and cs["started"] and cs["containerID"] == "process://x"
    assert cs["imageID"] == "" and cs["restartCount"] == 0
    assert st["podIP"] == "127.0.0.1" and st["hostIPs"] == [{"ip": "127.0.0.1"}]
    assert st["qosClass"] == "BestEffort"


def test_unready_condition_names_containers_and_keeps_transition_time():
    first = status_for(POD, [view("web", NEW)], now=T0)
    ready = {c["type"]: c for c in first["conditions"]}["Ready"]
    assert ready["status"] == "False"
    assert ready["message"] == "containers with unready status: [web]"
    later = status_for({**POD, "status": first}, [view("web", NEW)], now=T0 + timedelta(minutes=5))
    assert {c["type"]: c for c in later["conditions"]}["Ready"][
        "lastTransitionTime"
    ] == "2026-01-01T00:00:00Z"
    flipped = status_for(
        {**POD, "status": first}, [view("web", RUN)], now=T0 + timedelta(minutes=5)
    )
    assert {c["type"]: c for c in flipped["conditions"]}["Ready"][
        "lastTransitionTime"
    ] == "2026-01-01T00:05:00Z"


def test_terminal_phase_sticks():
    pod = {**POD, "status": {"phase": "Succeeded"}}
    st = status_for(pod, [view("web", RUN)])
    assert st["phase"] == "Succeeded"
    assert {c["type"]: c.get("reason") for c in st["conditions"]}["Ready"] == "PodCompleted"


def test_backoff_message_format():
    assert backoff_message(20, "web", POD) == (
        "back-off 20s restarting failed container=web pod=web-abc_default(u1)"
    )


def test_qos_class():
    guaranteed = {"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}
    burstable = {"containers": [{"resources": {"requests": {"cpu": "100m"}}}]}
    assert qos_class(guaranteed) == "Guaranteed"
    assert qos_class(burstable) == "Burstable"
    assert qos_class({"containers": [{}]}) == "BestEffort"


def test_deleted_pod_with_stopped_containers_is_terminal():
    deleting = {**POD, "metadata": {**POD["metadata"], "deletionTimestamp": "2026-01-01T00:00:00Z"}}
    killed = terminated(exited(143, signal=15))
    assert status_for(deleting, [view("web", killed)])["phase"] == "Failed"
    assert status_for(deleting, [view("web", OK)])["phase"] == "Succeeded"
    assert status_for(deleting, [view("web", RUN)])["phase"] == "Running"
