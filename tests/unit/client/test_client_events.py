import asyncio
import contextlib
import re

import orjson
from client_fakeapi import serve

from corral.client.api import ApiClient
from corral.client.events import EventRecorder
from corral.clock import FakeClock

POD = {"apiVersion": "v1", "kind": "Pod",
       "metadata": {"name": "web-1", "namespace": "ns1", "uid": "u-1", "resourceVersion": "7"}}
NODE = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1", "uid": "u-n1"}}


async def until(cond, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.005)


@contextlib.asynccontextmanager
async def recorder(url: str, clock: FakeClock, **kw):
    async with ApiClient(url) as c:
        rec = EventRecorder(c, "scheduler", host="h1", clock=clock, **kw)
        task = asyncio.ensure_future(rec.run())
        try:
            yield rec
        finally:
            await rec.close(timeout=2)
            await asyncio.wait_for(task, 2)


async def test_first_event_is_created_like_kubernetes():
    clock = FakeClock()
    async with serve() as api, recorder(api.url, clock) as rec:
        rec.record(POD, "Warning", "FailedScheduling", "0/3 nodes are available")
        await until(lambda: rec.written == 1)
        [ev] = api.objects["events"].values()
        assert re.fullmatch(r"web-1\.[0-9a-f]{16}", ev["metadata"]["name"])
        assert ev["metadata"]["namespace"] == "ns1"
        assert ev["involvedObject"] == {"kind": "Pod", "apiVersion": "v1", "namespace": "ns1",
                                        "name": "web-1", "uid": "u-1", "resourceVersion": "7"}
        assert (ev["type"], ev["reason"], ev["count"]) == ("Warning", "FailedScheduling", 1)
        assert ev["firstTimestamp"] == ev["lastTimestamp"] == "2026-01-01T00:00:00Z"
        assert ev["source"] == {"component": "scheduler", "host": "h1"}
        assert ev["reportingComponent"] == "scheduler"


async def test_repeats_bump_count_instead_of_creating():
    clock = FakeClock()
    async with serve() as api, recorder(api.url, clock) as rec:
        rec.record(POD, "Warning", "BackOff", "restarting")
        await until(lambda: rec.written == 1)
        await clock.advance(30)
        rec.record(POD, "Warning", "BackOff", "restarting")
        rec.record(POD, "Warning", "BackOff", "restarting")
        await until(lambda: rec.written == 3)
        [ev] = api.objects["events"].values()
        assert ev["count"] == 3 and ev["lastTimestamp"] == "2026-01-01T00:00:30Z"
        assert ev["firstTimestamp"] == "2026-01-01T00:00:00Z"
        patch = [r for r in api.requests if r.method == "PATCH"][-1]
        assert orjson.loads(patch.body) == {"count": 3, "lastTimestamp": "2026-01-01T00:00:30Z"}
        rec.record(POD, "Warning", "BackOff", "a different message")
        await until(lambda: rec.written == 4)
        assert len(api.objects["events"]) == 2  # same frozen clock, still unique names


async def test_cluster_scoped_objects_get_events_in_default():
    async with serve() as api, recorder(api.url, FakeClock()) as rec:
        rec.record(NODE, "Normal", "NodeReady", "ready")
        await until(lambda: rec.written == 1)
        [ev] = api.objects["events"].values()
        assert ev["metadata"]["namespace"] == "default"
        assert ev["involvedObject"]["namespace"] == ""


async def test_expired_event_is_recreated():
    async with serve() as api, recorder(api.url, FakeClock()) as rec:
        rec.record(POD, "Normal", "Pulled", "ok")
        await until(lambda: rec.written == 1)
        api.objects["events"].clear()
        rec.record(POD, "Normal", "Pulled", "ok")
        await until(lambda: rec.written == 2)
        [ev] = api.objects["events"].values()
        assert ev["count"] == 1


async def test_failures_are_counted_never_raised():
    async with serve() as api, recorder(api.url, FakeClock(), max_pending=2) as rec:
        api.script("POST", 500, "InternalError", "store down")
        rec.record(POD, "Normal", "A", "x")
        await until(lambda: rec.failed == 1)
        rec.record({"metadata": {}}, "Normal", "A", "x")  # no name
        rec.record(POD, "Bogus", "A", "x")  # bad type
        assert rec.failed == 3
        # A full queue drops rather than blocks (run() has not had a turn yet).
        for i in range(5):
            rec.record(POD, "Normal", "R", str(i))
        assert rec.dropped == 3
        await until(lambda: rec.written == 2)


async def test_close_flushes_and_later_records_are_dropped():
    async with serve() as api, ApiClient(api.url) as c:
        rec = EventRecorder(c, "agent", clock=FakeClock())
        task = asyncio.ensure_future(rec.run())
        rec.record(POD, "Normal", "Started", "started")
        await rec.close(timeout=2)
        await asyncio.wait_for(task, 2)
        assert rec.written == 1 and len(api.objects["events"]) == 1
        rec.record(POD, "Normal", "Started", "again")
        assert rec.dropped == 1


async def test_repeats_waiting_to_be_written_cost_one_write():
    async with serve() as api, ApiClient(api.url) as c:
        rec = EventRecorder(c, "scheduler", clock=FakeClock())
        for _ in range(5):  # run() not started: all five wait together
            rec.record(POD, "Warning", "FailedScheduling", "0/3 nodes are available")
        task = asyncio.ensure_future(rec.run())
        await until(lambda: rec.written == 5)
        assert rec.requests == 1
        [ev] = api.objects["events"].values()
        assert ev["count"] == 5
        await rec.close(timeout=2)
        await asyncio.wait_for(task, 2)


async def test_spam_filter_limits_one_object_then_refills():
    clock = FakeClock()
    async with serve() as api, recorder(api.url, clock, spam_burst=3) as rec:
        for i in range(5):
            rec.record(POD, "Normal", "Pulled", f"image {i}")
        rec.record(NODE, "Normal", "NodeReady", "ready")  # another object: its own bucket
        assert rec.filtered == 2
        await until(lambda: rec.written == 4)
        await clock.advance(300)  # one token back
        rec.record(POD, "Normal", "Pulled", "image 5")
        rec.record(POD, "Normal", "Pulled", "image 6")
        assert rec.filtered == 3
        await until(lambda: rec.written == 5)


async def test_many_messages_of_one_reason_are_combined():
    async with serve() as api, recorder(api.url, FakeClock(), aggregate_max=3) as rec:
        for i in range(6):
            rec.record(POD, "Warning", "FailedMount", f"volume {i} not ready")
        await until(lambda: rec.written == 6)
        messages = sorted(e["message"] for e in api.objects["events"].values())
        assert len(messages) == 6 and messages[:3] == [
            "(combined from similar events): volume 3 not ready",
            "(combined from similar events): volume 4 not ready",
            "(combined from similar events): volume 5 not ready"]


async def test_writes_are_paced_not_dropped():
    clock = FakeClock()
    async with serve() as api, recorder(api.url, clock, qps=1, burst=2) as rec:
        pods = [{**POD, "metadata": {**POD["metadata"], "name": f"p{i}", "uid": f"u{i}"}} for i in range(5)]
        for pod in pods:
            rec.record(pod, "Normal", "Scheduled", "assigned")
        await until(lambda: rec.written == 2)
        await asyncio.sleep(0.1)
        assert rec.written == 2 and rec.dropped == 0  # the rest wait for tokens
        await clock.advance(3)
        await until(lambda: rec.written == 5)


async def test_writes_yield_to_a_busy_component_for_at_most_max_defer():
    clock = FakeClock()
    idle = asyncio.Event()  # busy
    async with serve() as api, recorder(api.url, clock, yield_to=idle, max_defer=5.0) as rec:
        rec.record(POD, "Normal", "Created", "Created container: main")
        rec.record(POD, "Normal", "Started", "Started container main")
        for _ in range(20):  # the writer gets every chance to run
            await asyncio.sleep(0)
        assert rec.written == 0 and not api.objects.get("events")
        idle.set()
        await until(lambda: rec.written == 2)
        idle.clear()
        rec.record(POD, "Warning", "BackOff", "restarting")
        await clock.advance(4.9)
        assert rec.written == 2
        await clock.advance(0.2)  # a busy component delays an Event, never drops it
        await until(lambda: rec.written == 3)
        assert rec.dropped == 0


async def test_recorders_on_one_loop_yield_to_any_busy_component():
    """``corral up``: the scheduler's Events wait while the agent is busy."""
    clock = FakeClock()
    idle = asyncio.Event()  # the agent: busy
    async with serve() as api, recorder(api.url, clock, yield_to=idle, max_defer=5.0) as agent, \
            recorder(api.url, clock, max_defer=5.0) as scheduler:
        scheduler.record(POD, "Normal", "Scheduled", "assigned ns1/web-1 to n1")
        for _ in range(20):  # the writer gets every chance to run
            await asyncio.sleep(0)
        assert scheduler.written == 0 and not api.objects.get("events")
        idle.set()
        await until(lambda: scheduler.written == 1)
        idle.clear()
        scheduler.record(NODE, "Normal", "RegisteredNode", "registered")
        await clock.advance(4.9)
        assert scheduler.written == 1
        await clock.advance(0.2)  # deferred at most max_defer, never dropped
        await until(lambda: scheduler.written == 2)
        await agent.close(timeout=2)  # a component that stopped holds nobody back
        scheduler.record(POD, "Warning", "FailedScheduling", "0/1 nodes are available")
        await until(lambda: scheduler.written == 3)
        assert agent.written == 0 and scheduler.dropped == 0
