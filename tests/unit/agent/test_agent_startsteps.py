"""The pod start step tracker (agent/startsteps.py): marks, steps, histograms, ring."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from corral.agent.startsteps import StartSteps


class Tick:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t

    def advance(self, ms: float) -> None:
        self.t += ms / 1000


@dataclass
class Handle:
    runtime: str = "process"
    start_steps: dict[str, Any] | None = field(default=None)


def samples(steps: StartSteps) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(steps.metrics_text().decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def start_pod(steps: StartSteps, tick: Tick, uid: str = "u1", reported: dict[str, Any] | None = None,
              runtime: str = "process") -> None:
    steps.seen(uid, "ns", f"pod-{uid}")
    tick.advance(30)
    steps.mark(uid, "slot")
    tick.advance(5)
    steps.mark(uid, "volumes")
    start = steps.container(uid, "main")
    tick.advance(2)
    start.mark("network")
    tick.advance(3)
    start.mark("env")
    if reported is None:
        base = tick.t
        reported = {"began": base + 0.010, "isolated": base + 0.020, "spawned": base + 0.025,
                    "laid_out": base + 0.005}
    tick.advance(40)
    start.done(Handle(runtime, reported))
    tick.advance(20)
    steps.status_written(uid, "Running")


def test_a_pod_start_is_a_timeline_of_increasing_marks() -> None:
    tick = Tick()
    steps = StartSteps(now=tick, wall=lambda: 1_700_000_000.25)
    start_pod(steps, tick)
    [timeline] = steps.timelines()
    assert timeline["namespace"] == "ns" and timeline["name"] == "pod-u1" and timeline["uid"] == "u1"
    assert timeline["runtime"] == "process"
    assert timeline["seenAt"] == "2023-11-14T22:13:20.250000Z"
    marks = timeline["marksMs"]
    assert list(marks) == ["seen", "slot", "volumes", "network", "env", "laid_out", "shim_began",
                           "isolated", "spawned", "started", "running"]
    assert marks == pytest.approx({"seen": 0, "slot": 30, "volumes": 35, "network": 37, "env": 40,
                                   "laid_out": 45, "shim_began": 50, "isolated": 60, "spawned": 65, "started": 80,
                                   "running": 100})
    assert timeline["totalMs"] == pytest.approx(100)
    [container] = timeline["containers"]
    assert container["name"] == "main" and container["init"] is False
    assert container["marksMs"]["began"] == pytest.approx(35)
    assert steps.tracking == 0


def test_histograms_count_the_pod_and_each_step_from_the_previous_mark() -> None:
    tick = Tick()
    steps = StartSteps(now=tick)
    start_pod(steps, tick)
    got = samples(steps)
    total = ("corral_agent_pod_start_duration_seconds_count", (("runtime", "process"),))
    assert got[total] == 1
    assert got[("corral_agent_pod_start_duration_seconds_sum", (("runtime", "process"),))] == pytest.approx(0.1)

    def step(name: str) -> float:
        key = (("runtime", "process"), ("step", name))
        assert got[("corral_agent_pod_start_step_duration_seconds_count", key)] == 1
        return got[("corral_agent_pod_start_step_duration_seconds_sum", key)]

    assert step("slot") == pytest.approx(0.030)
    assert step("laid_out") == pytest.approx(0.005)  # from "env"
    assert step("shim_began") == pytest.approx(0.005)  # from "laid_out"
    assert step("started") == pytest.approx(0.015)  # from "spawned"
    assert step("running") == pytest.approx(0.020)
    container = (("runtime", "process"),)
    assert got[("corral_agent_container_start_duration_seconds_count", container)] == 1
    assert got[("corral_agent_container_start_duration_seconds_sum", container)] == pytest.approx(0.045)


def test_without_runtime_marks_the_runtime_step_runs_from_env() -> None:
    """Docker reports no supervisor marks; marks outside the start (another
    clock, garbage) are ignored rather than bending the timeline."""
    tick = Tick()
    steps = StartSteps(now=tick)
    start_pod(steps, tick, reported={"began": 5.0, "isolated": "soon", "spawned": 10_000.0},
              runtime="docker")
    [timeline] = steps.timelines()
    assert list(timeline["marksMs"]) == ["seen", "slot", "volumes", "network", "env", "started", "running"]
    got = samples(steps)
    key = (("runtime", "docker"), ("step", "started"))
    assert got[("corral_agent_pod_start_step_duration_seconds_sum", key)] == pytest.approx(0.040)


def test_marks_are_kept_once_the_first_time() -> None:
    tick = Tick()
    steps = StartSteps(now=tick)
    steps.seen("u", "ns", "p")
    tick.advance(10)
    steps.mark("u", "slot")
    tick.advance(10)
    steps.mark("u", "slot")  # a later sync
    steps.seen("u", "ns", "p")  # an update of the same pod
    start = steps.container("u", "main")
    start.done(Handle())
    steps.status_written("u", "Running")
    assert steps.timelines()[0]["marksMs"]["slot"] == pytest.approx(10)


def test_only_the_first_running_write_ends_a_start() -> None:
    tick = Tick()
    steps = StartSteps(now=tick)
    steps.seen("u", "ns", "p")
    steps.container("u", "main").done(Handle())
    steps.status_written("u", "Pending")
    assert steps.tracking == 1 and not steps.timelines()
    steps.status_written("u", "Running")
    steps.status_written("u", "Running")
    assert len(steps.timelines()) == 1


def test_pods_that_never_start_here_are_forgotten_not_counted() -> None:
    tick = Tick()
    steps = StartSteps(now=tick)
    steps.seen("adopted", "ns", "a")  # Running already, no start by this agent
    steps.status_written("adopted", "Running")
    steps.seen("job", "ns", "j")
    steps.container("job", "main").done(Handle())
    steps.status_written("job", "Succeeded")
    steps.seen("gone", "ns", "g")
    steps.forget("gone")
    steps.mark("gone", "slot")
    assert steps.timelines() == [] and steps.tracking == 0
    assert ("corral_agent_pod_start_duration_seconds_count", (("runtime", "process"),)) not in samples(steps)


def test_restarts_count_as_container_starts_only() -> None:
    tick = Tick()
    steps = StartSteps(now=tick)
    start_pod(steps, tick)
    steps.container("u1", "main").done(Handle())  # a restart after Running
    got = samples(steps)
    assert got[("corral_agent_container_start_duration_seconds_count", (("runtime", "process"),))] == 2
    assert got[("corral_agent_pod_start_duration_seconds_count", (("runtime", "process"),))] == 1


def test_the_ring_and_the_active_set_are_bounded() -> None:
    tick = Tick()
    steps = StartSteps(now=tick, ring=3, active_max=2)
    for i in range(5):
        start_pod(steps, tick, uid=f"u{i}")
    assert [t["uid"] for t in steps.timelines()] == ["u2", "u3", "u4"]
    assert [t["uid"] for t in steps.timelines(limit=1)] == ["u4"]
    assert steps.timelines(namespace="other") == []
    for i in range(4):
        steps.seen(f"pending{i}", "ns", "p")
    assert steps.tracking == 2


def test_a_registry_of_its_own() -> None:
    """Two agents in one process (tests, hollow nodes) keep their own series."""
    tick = Tick()
    one, two = StartSteps(now=tick), StartSteps(now=tick)
    start_pod(one, tick)
    assert ("corral_agent_pod_start_duration_seconds_count", (("runtime", "process"),)) not in samples(two)
