"""RequestLimiter's acquire/release pair (what the security chain calls per
request): slots, the queue, refusals, and no lane left behind."""

from __future__ import annotations

import asyncio

import pytest

from corral.api.auth import User
from corral.api.errors import TooManyRequests
from corral.api.ratelimit import LimitSettings, RequestLimiter


def _limiter(**kw: float) -> RequestLimiter:
    return RequestLimiter(LimitSettings(**kw))  # type: ignore[arg-type]


async def test_a_lane_lives_only_while_its_user_has_requests_in_flight() -> None:
    limiter = _limiter()
    lane = await limiter.acquire("alice")
    assert limiter.in_flight_total == 1 and lane.in_flight == 1
    assert lane.freed is None  # nothing waited: no Event was made
    limiter.release("alice", lane)
    assert limiter.in_flight_total == 0
    assert limiter._lanes == {}


async def test_a_full_lane_queues_and_the_next_release_lets_one_in() -> None:
    limiter = _limiter(max_in_flight_per_user=1, queue_per_user=1, queue_wait=5.0)
    first = await limiter.acquire("bob")
    waiting = asyncio.ensure_future(limiter.acquire("bob"))
    await asyncio.sleep(0)
    assert not waiting.done() and first.waiting == 1
    with pytest.raises(TooManyRequests, match="queue is full"):
        await limiter.acquire("bob")
    limiter.release("bob", first)
    second = await asyncio.wait_for(waiting, 5.0)
    assert second is first and second.in_flight == 1
    limiter.release("bob", second)
    assert limiter._lanes == {} and limiter.in_flight_total == 0


async def test_waiting_past_queue_wait_is_refused_and_leaves_no_lane() -> None:
    limiter = _limiter(max_in_flight_per_user=5, max_in_flight_total=1, queue_wait=0.05)
    held = await limiter.acquire("carol")
    with pytest.raises(TooManyRequests, match="timed out"):
        await limiter.acquire("dave")  # the server is full, dave's lane is new
    assert set(limiter._lanes) == {"carol"}
    assert limiter.rejected == 1
    limiter.release("carol", held)
    assert limiter._lanes == {}


async def test_slot_still_exempts_masters_and_counts_a_user() -> None:
    limiter = _limiter(max_in_flight_per_user=1, queue_per_user=0)
    admin = User("admin", "", ("system:masters",))
    user = User("erin", "", ("system:authenticated",))
    async with limiter.slot(admin, False), limiter.slot(admin, False):
        assert limiter.in_flight_total == 0
    async with limiter.slot(user, False):
        assert limiter.in_flight_total == 1
        with pytest.raises(TooManyRequests):
            async with limiter.slot(user, False):
                pass
    assert limiter.in_flight_total == 0 and limiter._lanes == {}
