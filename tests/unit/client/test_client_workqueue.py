import asyncio
import logging

import pytest

from corral.client.workqueue import QueueShutDown, WorkQueue
from corral.clock import FakeClock


async def get_now(q: WorkQueue) -> str:
    """get() when a key must already be ready: fail instead of hanging."""
    async with asyncio.timeout(1):
        return await q.get()


async def assert_blocks(q: WorkQueue) -> None:
    task = asyncio.ensure_future(q.get())
    for _ in range(10):
        await asyncio.sleep(0)
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_dedupes_waiting_keys_and_keeps_fifo_order():
    q = WorkQueue(clock=FakeClock())
    for key in ["a", "b", "a", "c", "b"]:
        q.add(key)
    assert len(q) == 3
    assert [await get_now(q) for _ in range(3)] == ["a", "b", "c"]
    await assert_blocks(q)


async def test_key_added_while_processing_is_requeued_only_after_done():
    q = WorkQueue(clock=FakeClock())
    q.add("a")
    assert await get_now(q) == "a"
    q.add("a")
    q.add("a")
    assert len(q) == 0  # one worker per key: not handed out while processing
    await assert_blocks(q)
    q.done("a")
    assert len(q) == 1
    assert await get_now(q) == "a"
    q.done("a")
    assert len(q) == 0


async def test_done_without_readd_does_not_requeue():
    q = WorkQueue(clock=FakeClock())
    q.add("a")
    await get_now(q)
    q.done("a")
    await assert_blocks(q)


async def test_get_waits_for_add_without_busy_loop():
    q = WorkQueue(clock=FakeClock())
    task = asyncio.ensure_future(q.get())
    await asyncio.sleep(0)
    assert not task.done()
    q.add("x")
    async with asyncio.timeout(1):
        assert await task == "x"


async def test_add_after_waits_on_the_injected_clock():
    clock = FakeClock()
    q = WorkQueue(clock=clock)
    q.add_after("late", 10)
    q.add_after("early", 2)
    assert len(q) == 0 and q.waiting == 2
    task = asyncio.ensure_future(q.get())
    await clock.advance(1.9)
    assert not task.done()
    await clock.advance(0.2)
    async with asyncio.timeout(1):
        assert await task == "early"
    await clock.advance(7.8)
    assert len(q) == 0
    await clock.advance(0.2)
    assert len(q) == 1
    assert await get_now(q) == "late"


async def test_delayed_key_is_due_when_time_passes_before_the_timer_first_runs():
    # A getter re-arms its timer as a task; time advanced before that task's
    # first step must still count (the CronJob test once missed a minute so).
    clock = FakeClock()
    q = WorkQueue(clock=clock)
    getter = asyncio.ensure_future(q.get())
    await asyncio.sleep(0)  # waiting, no deadline yet
    q.add_after("k", 60)  # wakes the getter, which re-waits towards 60 s
    await asyncio.sleep(0)  # the getter has made its timer task; it has not run
    await clock.advance(60)
    async with asyncio.timeout(1):
        assert await getter == "k"


async def test_add_after_keeps_the_earlier_deadline():
    clock = FakeClock()
    q = WorkQueue(clock=clock)
    q.add_after("k", 10)
    q.add_after("k", 3)
    q.add_after("k", 5)
    assert q.waiting == 1
    await clock.advance(3)
    assert await get_now(q) == "k"
    q.done("k")
    await clock.advance(20)
    assert len(q) == 0  # the superseded deadlines did not fire again


async def test_delayed_key_already_queued_is_not_duplicated():
    clock = FakeClock()
    q = WorkQueue(clock=clock)
    q.add("k")
    q.add_after("k", 1)
    await clock.advance(1)
    assert len(q) == 1


async def test_rate_limited_backoff_grows_exponentially_and_forget_resets():
    clock = FakeClock()
    q = WorkQueue(clock=clock, base_delay=1.0, max_delay=10.0)
    expected = [1, 2, 4, 8, 10, 10]
    for n, delay in enumerate(expected):
        q.add_rate_limited("k")
        assert q.num_requeues("k") == n + 1
        await clock.advance(delay * 0.99 - 0.001 if delay < 10 else 9.99)
        assert len(q) == 0, f"requeue {n} came before {delay}s"
        await clock.advance(delay * 0.12 + 0.01)  # jitter adds at most 10%
        assert len(q) == 1, f"requeue {n} not back after {delay * 1.1}s"
        assert await get_now(q) == "k"
        q.done("k")
    q.forget("k")
    assert q.num_requeues("k") == 0
    q.add_rate_limited("k")
    await clock.advance(1.11)
    assert len(q) == 1


async def test_rate_limiter_survives_huge_failure_counts():
    clock = FakeClock()
    q = WorkQueue(clock=clock, base_delay=0.005, max_delay=300)
    for _ in range(2000):
        q.add_rate_limited("k")
    await clock.advance(300.0)
    assert len(q) == 1


async def test_shutdown_wakes_getters_and_refuses_work():
    q = WorkQueue(clock=FakeClock())
    getters = [asyncio.ensure_future(q.get()) for _ in range(3)]
    await asyncio.sleep(0)
    q.shutdown()
    for task in getters:
        with pytest.raises(QueueShutDown):
            async with asyncio.timeout(1):
                await task
    q.add("a")
    with pytest.raises(QueueShutDown):
        await q.get()


async def test_bounded_size_drops_and_counts(caplog):
    q = WorkQueue(clock=FakeClock(), max_size=3)
    with caplog.at_level(logging.WARNING):
        for key in "abcde":
            q.add(key)
    assert len(q) == 3 and q.dropped == 2
    assert "dropped" in caplog.text
    q.add("a")  # already queued: not a drop
    assert q.dropped == 2


async def test_many_workers_each_key_once():
    q = WorkQueue(clock=FakeClock())
    seen: list[str] = []

    async def worker() -> None:
        while True:
            try:
                key = await q.get()
            except QueueShutDown:
                return
            seen.append(key)
            await asyncio.sleep(0)
            q.done(key)

    workers = [asyncio.ensure_future(worker()) for _ in range(4)]
    for i in range(100):
        q.add(f"k{i % 10}")
        if i % 7 == 0:
            await asyncio.sleep(0)
    async with asyncio.timeout(5):
        while len(q) or len(seen) < 10:
            await asyncio.sleep(0)
    q.shutdown()
    await asyncio.gather(*workers)
    assert set(seen) == {f"k{i}" for i in range(10)}


async def test_cancelled_getter_does_not_swallow_a_wakeup():
    q = WorkQueue(clock=FakeClock())
    first = asyncio.ensure_future(q.get())
    second = asyncio.ensure_future(q.get())
    await asyncio.sleep(0)
    q.add("a")  # wakes `first`...
    first.cancel()  # ...which dies before it can take the key
    async with asyncio.timeout(1):
        assert await second == "a"


def test_rejects_bad_configuration():
    with pytest.raises(ValueError, match="base_delay"):
        WorkQueue(base_delay=0)
    with pytest.raises(ValueError, match="max_size"):
        WorkQueue(max_size=0)
