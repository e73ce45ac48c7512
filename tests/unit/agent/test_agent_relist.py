"""The node's one relist (agent/relist.py): every interval it looks at the
workers with running containers, wakes those whose container stopped (or
whose look failed), and stops when none is left to look at."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from corral.agent.relist import Relist
from corral.clock import RealClock

INTERVAL = 0.02


class Worker:
    def __init__(self, name: str) -> None:
        self.namespace, self.name = "default", name
        self.stopped = False
        self.fails = False
        self.looks = 0
        self.woken = 0

    async def stopped_running(self) -> bool:
        self.looks += 1
        if self.fails:
            raise OSError("state file unreadable")
        return self.stopped

    def wake(self) -> None:
        self.woken += 1


async def until(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


async def test_only_the_worker_whose_container_stopped_is_woken() -> None:
    relist = Relist(RealClock())
    workers = [Worker(f"p{i}") for i in range(5)]
    try:
        for w in workers:
            relist.watch(w, INTERVAL)
        await until(lambda: all(w.looks >= 3 for w in workers))  # looked at again and again
        assert not any(w.woken for w in workers)
        workers[2].stopped = True
        await until(lambda: workers[2].woken == 1)
        assert relist.watching == 4  # a woken worker is looked at again once it idles again
        looks = workers[2].looks
        await until(lambda: workers[0].looks >= looks + 3)
        assert workers[2].looks == looks and workers[2].woken == 1
        assert [w.woken for w in workers] == [0, 0, 1, 0, 0]
    finally:
        await relist.close()


async def test_a_failed_look_wakes_the_worker_to_sync_and_others_are_still_looked_at() -> None:
    relist = Relist(RealClock())
    bad, good = Worker("bad"), Worker("good")
    try:
        bad.fails = True
        relist.watch(bad, INTERVAL)
        relist.watch(good, INTERVAL)
        await until(lambda: bad.woken == 1 and good.looks >= 2)
        assert good.woken == 0
    finally:
        await relist.close()


async def test_unwatched_workers_are_not_looked_at_and_the_task_ends_with_the_last() -> None:
    relist = Relist(RealClock())
    w = Worker("p")
    relist.watch(w, INTERVAL)
    await until(lambda: w.looks >= 1)
    relist.unwatch(w)
    task = relist._task
    assert task is not None
    await asyncio.wait_for(task, 1.0)  # nothing left to look at
    looks = w.looks
    await asyncio.sleep(3 * INTERVAL)
    assert w.looks == looks
    relist.watch(w, INTERVAL)  # a new running container starts it again
    await until(lambda: w.looks > looks)
    await relist.close()
    assert relist.watching == 0
