import asyncio
import contextlib
import logging

import pytest
from client_fakeapi import serve

from corral.client.api import ApiClient
from corral.client.informer import Informer, strip_managed_fields, wait_for_sync
from corral.client.resources import PODS
from corral.clock import FakeClock


def pod(name: str, node: str = "", **labels: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "ns1", "labels": labels},
            "spec": {"nodeName": node}}


async def until(cond, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.005)


class Recorder:
    def __init__(self) -> None:
        self.log: list[tuple] = []

    def handlers(self) -> dict:
        return {
            "on_add": lambda o: self.log.append(("add", o["metadata"]["name"])),
            "on_update": lambda old, new: self.log.append(
                ("update", new["metadata"]["name"], old["metadata"]["resourceVersion"],
                 new["metadata"]["resourceVersion"])),
            "on_delete": lambda o: self.log.append(("delete", o["metadata"]["name"])),
        }


@contextlib.asynccontextmanager
async def running(inf: Informer):
    task = asyncio.ensure_future(inf.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_list_then_watch_fills_cache_fires_handlers_and_indexes():
    async with serve() as api, ApiClient(api.url) as c:
        api.seed("pods", pod("a", "n1"))
        api.seed("pods", pod("b", "n2"))
        inf = Informer(c, PODS, namespace="ns1")
        rec = Recorder()
        inf.add_handler(**rec.handlers())
        inf.add_index("nodeName", lambda o: [o["spec"]["nodeName"]] if o["spec"]["nodeName"] else [])
        async with running(inf):
            await inf.wait_synced(timeout=5)
            assert inf.synced and inf.resource_version == "2"
            assert sorted(rec.log) == [("add", "a"), ("add", "b")]
            assert inf.cache.get("ns1/a")["kind"] == "Pod"
            await api.wait_watchers()
            assert api.requests[-1].query["resourceVersion"] == "2"

            api.emit("pods", "ADDED", pod("c", "n1"))
            moved = {**inf.cache.get("ns1/b"), "spec": {"nodeName": "n1"}}
            api.emit("pods", "MODIFIED", moved)
            api.emit("pods", "DELETED", pod("a"))
            await until(lambda: len(rec.log) == 5)
            assert rec.log[2:] == [("add", "c"), ("update", "b", "2", "4"), ("delete", "a")]
            assert sorted(inf.cache.keys()) == ["ns1/b", "ns1/c"]
            assert [o["metadata"]["name"] for o in inf.cache.by_index("nodeName", "n1")] == ["b", "c"]
            assert inf.cache.by_index("nodeName", "n2") == []
            assert inf.resource_version == "5"

            api.push({"type": "BOOKMARK", "object": {"kind": "Pod",
                                                     "metadata": {"resourceVersion": "77"}}})
            await until(lambda: inf.resource_version == "77")
            assert len(rec.log) == 5


async def test_relist_after_410_fires_the_difference():
    async with serve() as api, ApiClient(api.url) as c:
        for name in "abd":
            api.seed("pods", pod(name))
        inf = Informer(c, PODS, namespace="ns1")
        rec = Recorder()
        inf.add_handler(**rec.handlers())
        async with running(inf):
            await inf.wait_synced(timeout=5)
            await api.wait_watchers()
            rec.log.clear()
            # Changes the informer never hears about: its watch then expires.
            api.seed("pods", {**pod("a"), "data": "changed"})
            api.unseed("pods", "b")
            api.seed("pods", pod("c"))
            api.compacted = api.rv  # watches from older revisions get 410
            api.end_watches()
            await until(lambda: inf.lists == 2 and len(rec.log) == 3)
            assert sorted(rec.log) == [("add", "c"), ("delete", "b"), ("update", "a", "1", "4")]
            assert sorted(inf.cache.keys()) == ["ns1/a", "ns1/c", "ns1/d"]
            assert inf.cache.get("ns1/a")["data"] == "changed"
            assert inf.resource_version == str(api.rv)
            await api.wait_watchers()
            assert api.requests[-1].query["resourceVersion"] == str(api.rv)


async def test_stream_end_rewatches_from_last_version_without_relisting():
    async with serve() as api, ApiClient(api.url) as c:
        inf = Informer(c, PODS, namespace="ns1")
        async with running(inf):
            await inf.wait_synced(timeout=5)
            await api.wait_watchers()
            api.emit("pods", "ADDED", pod("a"))
            await until(lambda: "ns1/a" in inf.cache)
            api.end_watches()  # the server's timeoutSeconds ran out
            await until(lambda: len(api.watches) == 1 and
                        api.requests[-1].query.get("resourceVersion") == "1")
            assert inf.lists == 1
            api.emit("pods", "ADDED", pod("b"))
            await until(lambda: "ns1/b" in inf.cache)


async def test_handler_errors_are_logged_and_do_not_stop_the_informer(caplog):
    async with serve() as api, ApiClient(api.url) as c:
        inf = Informer(c, PODS, namespace="ns1")
        good: list[str] = []

        def bad(obj: dict) -> None:
            raise RuntimeError("handler bug")

        inf.add_handler(on_add=bad)
        inf.add_handler(on_add=lambda o: good.append(o["metadata"]["name"]))
        with caplog.at_level(logging.ERROR):
            async with running(inf) as task:
                await inf.wait_synced(timeout=5)
                await api.wait_watchers()
                api.emit("pods", "ADDED", pod("a"))
                api.emit("pods", "ADDED", pod("b"))
                await until(lambda: good == ["a", "b"])
                assert not task.done()
        assert "handler bug" in caplog.text


async def test_late_handler_gets_synthetic_adds():
    async with serve() as api, ApiClient(api.url) as c:
        api.seed("pods", pod("a"))
        api.seed("pods", pod("b"))
        inf = Informer(c, PODS, namespace="ns1")
        async with running(inf):
            await wait_for_sync(inf, timeout=5)
            rec = Recorder()
            inf.add_handler(**rec.handlers())
            assert sorted(rec.log) == [("add", "a"), ("add", "b")]


async def test_list_errors_back_off_on_the_clock_then_recover():
    clock = FakeClock()
    async with serve() as api, ApiClient(api.url, clock=clock) as c:
        api.seed("pods", pod("a"))
        api.script("GET", 500, "InternalError", "store down", when={"limit": "500"})
        api.script("GET", 500, "InternalError", "store down", when={"limit": "500"})
        inf = Informer(c, PODS, namespace="ns1", clock=clock)
        async with running(inf):
            await until(lambda: clock.sleepers == 1)
            assert not inf.synced
            await clock.advance(0.1)
            assert clock.sleepers == 1 and not inf.synced  # first wait is >= 0.2 s
            await clock.advance(0.2)
            await until(lambda: clock.sleepers == 1 and len(api.requests) == 2)
            await clock.advance(0.5)  # second wait: 0.4..0.48 s
            await inf.wait_synced(timeout=5)
            assert "ns1/a" in inf.cache


async def test_wait_synced_times_out():
    async with serve() as api, ApiClient(api.url) as c:
        inf = Informer(c, PODS)
        with pytest.raises(TimeoutError):
            await inf.wait_synced(timeout=0.01)


def test_replace_diff_without_a_server():
    inf = Informer(ApiClient("http://127.0.0.1:1"), PODS)
    rec = Recorder()
    inf.add_handler(**rec.handlers())
    a1 = {**pod("a"), "metadata": {**pod("a")["metadata"], "resourceVersion": "1"}}
    b1 = {**pod("b"), "metadata": {**pod("b")["metadata"], "resourceVersion": "2"}}
    inf.replace([a1, b1], "2")
    a2 = {**a1, "metadata": {**a1["metadata"], "resourceVersion": "3"}}
    inf.replace([a2, b1], "3")
    inf.replace([b1], "4")
    assert rec.log == [("add", "a"), ("add", "b"), ("update", "a", "1", "3"), ("delete", "a")]
    assert inf.resource_version == "4"


async def test_restarted_informer_resumes_watch_without_relisting():
    async with serve() as api, ApiClient(api.url) as c:
        api.seed("pods", pod("a"))
        inf = Informer(c, PODS, namespace="ns1")
        rec = Recorder()
        inf.add_handler(**rec.handlers())
        async with running(inf):
            await inf.wait_synced(timeout=5)
        api.emit("pods", "ADDED", pod("b"))  # while stopped; history keeps it
        async with running(inf):
            await until(lambda: "ns1/b" in inf.cache)
        assert inf.lists == 1
        assert rec.log == [("add", "a"), ("add", "b")]


async def test_time_without_a_stream_is_reported_once_it_is_back():
    """A broken stream makes the informer blind from the failure until data
    flows again; ``on_sight`` gets how long (node lifecycle forgives it)."""
    clock = FakeClock()
    async with serve() as api, ApiClient(api.url, clock=clock) as c:
        api.seed("pods", pod("a"))
        api.script("GET", 500, "InternalError", "store down", when={"limit": "500"})
        inf = Informer(c, PODS, namespace="ns1", clock=clock)
        sights: list[float] = []
        inf.on_sight = sights.append
        assert inf.blind_since is None
        async with running(inf):
            await until(lambda: clock.sleepers == 1)
            assert inf.blind_since == 0.0 and not inf.synced
            await clock.advance(0.5)
            await inf.wait_synced(timeout=5)
            assert inf.blind_since is None
            assert sights == [0.5]


async def test_a_transform_shapes_listed_and_watched_objects_before_cache_and_handlers():
    managed = [{"manager": "m", "operation": "Update", "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}}]

    def with_fields(obj: dict) -> dict:
        obj["metadata"]["managedFields"] = managed
        return obj

    async with serve() as api, ApiClient(api.url) as c:
        api.seed("pods", with_fields(pod("a", "n1")))
        inf = Informer(c, PODS, namespace="ns1", transform=strip_managed_fields)
        seen: list[dict] = []
        inf.add_handler(on_add=seen.append, on_update=lambda old, new: seen.append(new))
        async with running(inf):
            await inf.wait_synced(timeout=5)
            await api.wait_watchers()
            api.emit("pods", "ADDED", with_fields(pod("b", "n2")))
            api.emit("pods", "MODIFIED", with_fields(pod("a", "n3")))
            api.push({"type": "BOOKMARK", "object": {"kind": "Pod", "metadata": {"resourceVersion": "77"}}})
            await until(lambda: inf.resource_version == "77")
        assert [o["metadata"]["name"] for o in seen] == ["a", "b", "a"]
        assert all("managedFields" not in o["metadata"] for o in seen)
        assert all("managedFields" not in o["metadata"] for o in inf.cache.list())
        assert inf.cache.get("ns1/a")["spec"]["nodeName"] == "n3"
        assert inf.cache.get("ns1/a")["metadata"]["resourceVersion"] != "77"  # a bookmark is no object


def test_strip_managed_fields_leaves_the_rest_and_takes_objects_without_metadata():
    obj = {"metadata": {"name": "x", "managedFields": [], "labels": {"a": "b"}}, "spec": {}}
    assert strip_managed_fields(obj) is obj
    assert obj == {"metadata": {"name": "x", "labels": {"a": "b"}}, "spec": {}}
    assert strip_managed_fields({"kind": "Pod"}) == {"kind": "Pod"}
