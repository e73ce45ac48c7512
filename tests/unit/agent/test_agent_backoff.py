"""Crash-loop backoff math, driven by FakeClock's monotonic time."""

from __future__ import annotations

from corral.agent.backoff import RestartBackoff
from corral.clock import FakeClock


async def crash(b: RestartBackoff, clock: FakeClock, n: int, ran_for: float = 1.0) -> float:
    b.exited("pod/web", f"instance-{n}", clock.monotonic(), ran_for)
    return b.remaining("pod/web", clock.monotonic())


async def test_first_restart_is_immediate_then_doubles_to_the_cap():
    clock, b = FakeClock(), RestartBackoff()
    waits = []
    for n in range(9):
        wait = await crash(b, clock, n)
        waits.append(wait)
        await clock.advance(wait)
        assert b.remaining("pod/web", clock.monotonic()) == 0
    assert waits == [0, 10, 20, 40, 80, 160, 300, 300, 300]
    assert b.delay("pod/web") == 300


async def test_same_instance_is_counted_once():
    clock, b = FakeClock(), RestartBackoff()
    await crash(b, clock, 1)
    await crash(b, clock, 2)
    assert b.delay("pod/web") == 10
    b.exited("pod/web", "instance-2", clock.monotonic(), 1.0)
    assert b.delay("pod/web") == 10


async def test_remaining_counts_down_with_the_clock():
    clock, b = FakeClock(), RestartBackoff()
    await crash(b, clock, 1)
    await crash(b, clock, 2)
    await clock.advance(4)
    assert b.remaining("pod/web", clock.monotonic()) == 6


async def test_running_ten_minutes_resets_backoff():
    clock, b = FakeClock(), RestartBackoff()
    for n in range(5):
        await clock.advance(await crash(b, clock, n))
    assert b.delay("pod/web") == 80
    assert await crash(b, clock, 99, ran_for=600) == 0
    assert await crash(b, clock, 100) == 10


async def test_forget_prefix_only_touches_that_pod():
    b = RestartBackoff()
    for key in ("uid1/a", "uid1/b", "uid2/a"):
        b.exited(key, "x", 0.0, 1.0)
        b.exited(key, "y", 0.0, 1.0)
    b.forget_prefix("uid1/")
    assert b.remaining("uid1/a", 0.0) == 0 and b.remaining("uid1/b", 0.0) == 0
    assert b.remaining("uid2/a", 0.0) == 10
