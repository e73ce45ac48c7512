import asyncio

from corral.clock import FakeClock
from corral.scheduler.queue import SchedulingQueue


async def test_backoff_doubles_to_cap():
    q = SchedulingQueue(clock=FakeClock())
    assert [q.backoff_for(n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]


async def test_dedup_and_order():
    q = SchedulingQueue(clock=FakeClock())
    for k in ("a", "b", "a"):
        q.add(k)
    assert len(q) == 2
    assert await q.pop() == "a"
    assert await q.pop() == "b"


async def test_unschedulable_retried_after_backoff():
    clock = FakeClock()
    q = SchedulingQueue(clock=clock)
    q.add("p")
    assert await q.pop() == "p"
    assert q.unschedulable("p") == 1.0
    task = asyncio.create_task(q.pop())
    await clock.advance(0.5)
    assert not task.done()
    await clock.advance(0.6)
    assert await asyncio.wait_for(task, 1) == "p"
    assert q.unschedulable("p") == 2.0


async def test_cluster_change_moves_waiting_pods():
    clock = FakeClock()
    q = SchedulingQueue(clock=clock)
    q.add("p")
    await q.pop()
    q.unschedulable("p")
    q.add("p")  # an update while backing off does not skip the backoff
    task = asyncio.create_task(q.pop())
    await asyncio.sleep(0)
    assert not task.done()
    assert q.move_all() == 1
    assert await asyncio.wait_for(task, 1) == "p"


async def test_remove_forgets():
    q = SchedulingQueue(clock=FakeClock())
    q.add("p")
    q.remove("p")
    q.add("q")
    assert await q.pop() == "q"
    q.close()
    assert await q.pop() is None
