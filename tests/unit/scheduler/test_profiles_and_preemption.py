"""Profiles (strategies, YAML, custom plugins), the priority queue, and
preemption's choice of victims."""

import asyncio
import random
from pathlib import Path

import pytest
from helpers import bind, cluster, node, place, pod, why

from corral.clock import FakeClock
from corral.scheduler.core import SchedulingCore
from corral.scheduler.preemption import Budget
from corral.scheduler.profile import load_profiles
from corral.scheduler.queue import SchedulingQueue
from corral.scheduler.selectors import LabelSelector

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "custom-score-plugin.py"


def test_binpack_fills_one_node_first_and_spread_shares():
    packed = place(cluster(node("a"), node("b"), node("c"), strategy="binpack"),
                   *(pod(f"p{i}", cpu="500m") for i in range(4)))
    assert len(set(packed)) == 1
    spread = place(cluster(node("a"), node("b"), node("c")), *(pod(f"p{i}", cpu="500m") for i in range(3)))
    assert sorted(spread) == ["a", "b", "c"]


def test_balanced_prefers_even_cpu_memory_use():
    core = cluster(node("cpu-heavy"), node("even"), strategy="balanced")
    bind(core, pod("x", cpu="1500m", memory="128Mi"), "cpu-heavy")
    bind(core, pod("y", cpu="1", memory="2Gi"), "even")
    assert place(core, pod("p", cpu="100m", memory="100Mi")) == ["even"]


def test_random_strategy_still_filters():
    core = cluster(node("a", cpu="1"), node("b", cpu="4"), strategy="random")
    assert place(core, *(pod(f"p{i}", cpu="2") for i in range(2))) == ["b", "b"]


def test_profiles_by_scheduler_name_from_yaml():
    profiles = load_profiles("profiles:\n- schedulerName: default-scheduler\n"
                             "- schedulerName: packer\n  strategy: binpack\n  disabled: [PodTopologySpread]\n")
    core = SchedulingCore(profiles, random.Random(1))
    for n in ("a", "b", "c"):
        core.state.set_node(node(n))
    got = [d.node for d in core.schedule([pod(f"p{i}", schedulerName="packer") for i in range(3)])]
    assert len(set(got)) == 1
    assert core.handles("packer") and not core.handles("other")


@pytest.mark.parametrize("text, field", [
    ("profiles: []", "profiles"),
    ("profiles:\n- strategy: fastest", "profiles[0].strategy"),
    ("profiles:\n- weights: {Bogus: 1}", "profiles[0].weights.Bogus"),
    ("profiles:\n- {}\n- {}", "unique"),
    ("profiles:\n- scorePlugins: [{weight: 1}]", "profiles[0].scorePlugins[0].path"),
    ("profiles:\n- scorePlugins: [{path: nowhere.py:X}]", "no such file"),
])
def test_bad_config_names_the_field(text, field):
    with pytest.raises(ValueError, match=field.replace("[", r"\[").replace("]", r"\]")):
        load_profiles(text)


def test_example_custom_score_plugin():
    text = (f"profiles:\n- scorePlugins:\n  - path: {EXAMPLE}:PreferLabel\n    weight: 5\n"
            "    args: {label: disktype, value: ssd}\n")
    core = SchedulingCore(load_profiles(text), random.Random(1))
    core.state.set_node(node("hdd", labels={"disktype": "hdd"}))
    core.state.set_node(node("ssd", labels={"disktype": "ssd"}))
    assert [d.node for d in core.schedule([pod(f"p{i}") for i in range(3)])] == ["ssd"] * 3


async def test_queue_orders_by_priority_then_age():
    q = SchedulingQueue(clock=FakeClock())
    q.add("old-low", 0, "2026-01-01T00:00:00Z")
    q.add("new-high", 100, "2026-01-02T00:00:00Z")
    q.add("older-high", 100, "2026-01-01T00:00:00Z")
    assert await q.pop_many(10) == ["older-high", "new-high", "old-low"]


async def test_queue_backoff_and_move():
    clock = FakeClock()
    q = SchedulingQueue(clock=clock)
    q.add("p")
    assert await q.pop() == "p"
    assert q.unschedulable("p") == 1.0
    task = asyncio.create_task(q.pop())
    await clock.advance(0.5)
    assert not task.done()
    assert q.move_all() == 1
    assert await asyncio.wait_for(task, 1) == "p"
    assert [q.backoff_for(n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]


def prio(core, name, priority, cpu="500m", labels=None, **spec):
    p = pod(name, cpu=cpu, labels=labels, priority=priority, **spec)
    return p


def test_preemption_picks_fewest_lowest_victims():
    core = cluster(node("a", cpu="2"), node("b", cpu="2"))
    bind(core, prio(core, "a-low1", 1, cpu="1"), "a")
    bind(core, prio(core, "a-low2", 1, cpu="1"), "a")
    bind(core, prio(core, "b-mid", 50, cpu="1500m"), "b")
    bind(core, prio(core, "b-low", 1, cpu="500m"), "b")
    d = core.schedule([prio(core, "urgent", 100, cpu="1")])[0]
    assert d.node is None and d.victims is not None
    assert d.victims.node == "a" and [k for k, _ in d.victims.pods] in (["default/a-low1"], ["default/a-low2"])
    assert "preemption:" not in d.message  # preemption under way, not failed
    # While the victims go, the room is held for the preemptor.
    assert "Insufficient cpu" in why(core, prio(core, "sneaky", 1, cpu="1"))


def test_preemption_respects_budgets_where_possible():
    core = cluster(node("a", cpu="2"), node("b", cpu="2"))
    bind(core, prio(core, "guarded", 1, cpu="2", labels={"app": "db"}), "a")
    bind(core, prio(core, "free", 1, cpu="2", labels={"app": "web"}), "b")
    core.budgets = [Budget("default", LabelSelector({"matchLabels": {"app": "db"}}), 0)]
    d = core.schedule([prio(core, "urgent", 100, cpu="1")])[0]
    assert d.victims is not None and [k for k, _ in d.victims.pods] == ["default/free"]


def test_no_preemption_for_never_or_equal_priority():
    core = cluster(node("a", cpu="1"))
    bind(core, prio(core, "same", 10, cpu="1"), "a")
    d = core.schedule([prio(core, "peer", 10, cpu="1")])[0]
    assert d.victims is None and d.message.endswith(
        "preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.")
    never = core.schedule([prio(core, "polite", 100, cpu="1", preemptionPolicy="Never")])[0]
    assert never.victims is None and never.message == (
        "0/1 nodes are available: 1 Insufficient cpu. preemption: not eligible due to preemptionPolicy=Never.")
