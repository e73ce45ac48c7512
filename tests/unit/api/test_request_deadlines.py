"""Request deadlines: a handler that runs past its time is cancelled and
answered 504 (at most a tick late), one that finishes is untouched, a
client that goes away is still a plain cancellation, and one sweeping
timer serves every request in flight (and only while there are some)."""

from __future__ import annotations

import asyncio
import time

import pytest

from corral.api.errors import Timeout
from corral.api.security import Deadlines

TICK = 0.05


async def _answer(after: float, value: str = "ok") -> str:
    await asyncio.sleep(after)
    return value


async def test_a_late_handler_is_a_504_and_a_prompt_one_is_untouched() -> None:
    deadlines = Deadlines(tick=TICK)
    started = time.monotonic()
    slow = asyncio.ensure_future(deadlines.within(0.2, _answer(5.0)))
    fast = asyncio.ensure_future(deadlines.within(0.2, _answer(0.01, "fast")))
    assert await fast == "fast"
    with pytest.raises(Timeout) as caught:
        await slow
    elapsed = time.monotonic() - started
    assert caught.value.code == 504
    assert 0.2 <= elapsed < 0.2 + TICK + 1.0
    await asyncio.sleep(TICK * 3)
    assert deadlines._timer is None  # nothing in flight: no timer either


async def test_a_client_that_goes_away_is_a_cancellation_not_a_timeout() -> None:
    deadlines = Deadlines(tick=TICK)
    task = asyncio.ensure_future(deadlines.within(10.0, _answer(5.0)))
    await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not deadlines._live


async def test_many_requests_share_one_timer() -> None:
    deadlines = Deadlines(tick=TICK)
    tasks = [asyncio.ensure_future(deadlines.within(10.0, _answer(0.1, str(i)))) for i in range(50)]
    await asyncio.sleep(0.01)
    timers = [h for h in asyncio.get_running_loop()._scheduled if not h.cancelled()]  # type: ignore[attr-defined]
    ours = [h for h in timers if getattr(h, "_callback", None) == deadlines._sweep]
    assert len(ours) == 1
    assert [await t for t in tasks] == [str(i) for i in range(50)]


def test_deadlines_keep_working_on_a_new_event_loop() -> None:
    deadlines = Deadlines(tick=TICK)

    async def abandoned() -> None:
        asyncio.ensure_future(deadlines.within(10.0, _answer(5.0)))
        await asyncio.sleep(0.01)  # the loop ends with that request (and the timer) pending

    asyncio.run(abandoned())

    async def timed_out() -> None:
        with pytest.raises(Timeout):
            await deadlines.within(0.1, _answer(5.0))

    asyncio.run(asyncio.wait_for(timed_out(), 3.0))
