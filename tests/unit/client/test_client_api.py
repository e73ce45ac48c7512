import asyncio
import socket

import orjson
import pytest
from client_fakeapi import serve

from corral.client import errors
from corral.client.api import MAX_READ_ATTEMPTS, ApiClient, object_head
from corral.client.resources import CONFIGMAPS, NODES, PODS
from corral.clock import FakeClock


def cm(name: str, **data: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "ns1"}, "data": data}


async def run_with_clock(clock: FakeClock, coro):
    """Drive a coroutine that sleeps on the fake clock (retry backoff)."""
    task = asyncio.ensure_future(coro)
    async with asyncio.timeout(10):
        while not task.done():
            await clock.advance(1.0)
            await asyncio.sleep(0.01)
    return task.result()


async def test_crud_round_trip_with_headers():
    async with serve() as api, ApiClient(api.url, token="tok", user_agent="corral-test") as c:
        created = await c.create(CONFIGMAPS, cm("a", k="v"))
        assert created["metadata"]["resourceVersion"]
        seen = api.requests[-1]
        assert (seen.method, seen.path) == ("POST", "/api/v1/namespaces/ns1/configmaps")
        assert seen.headers["Authorization"] == "Bearer tok"
        assert seen.headers["Accept"] == "application/json"
        assert seen.headers["User-Agent"] == "corral-test"
        assert seen.headers["Content-Type"] == "application/json"
        assert orjson.loads(seen.body)["data"] == {"k": "v"}

        got = await c.get(CONFIGMAPS, "a", "ns1")
        assert got == created
        got["data"]["k"] = "v2"
        replaced = await c.replace(CONFIGMAPS, got)
        assert replaced["data"]["k"] == "v2"
        with pytest.raises(errors.ConflictError):
            await c.replace(CONFIGMAPS, got)  # carries the old resourceVersion
        with pytest.raises(errors.AlreadyExistsError):
            await c.create(CONFIGMAPS, cm("a"))

        patched = await c.patch(CONFIGMAPS, "a", {"data": {"x": "1"}}, "ns1")
        assert patched["data"] == {"k": "v2", "x": "1"}
        assert api.requests[-1].headers["Content-Type"] == "application/merge-patch+json"

        await c.delete(CONFIGMAPS, "a", "ns1", grace_period_seconds=0, propagation_policy="Background")
        seen = api.requests[-1]
        assert seen.query == {"gracePeriodSeconds": "0", "propagationPolicy": "Background"}
        assert orjson.loads(seen.body) == {"kind": "DeleteOptions", "apiVersion": "v1",
                                           "gracePeriodSeconds": 0,
                                           "propagationPolicy": "Background"}
        with pytest.raises(errors.NotFoundError) as info:
            await c.get(CONFIGMAPS, "a", "ns1")
        assert info.value.status == 404 and info.value.reason == "NotFound"


async def test_patch_types_and_apply_parameters():
    async with serve() as api, ApiClient(api.url) as c:
        await c.create(NODES, {"metadata": {"name": "n1"}})
        await c.patch(NODES, "n1", {"spec": {"unschedulable": True}}, patch_type="strategic")
        assert api.requests[-1].headers["Content-Type"] == "application/strategic-merge-patch+json"
        await c.patch(NODES, "n1", {"metadata": {"name": "n1"}}, patch_type="apply",
                      field_manager="corral", force=True)
        seen = api.requests[-1]
        assert seen.headers["Content-Type"] == "application/apply-patch+yaml"
        assert seen.query == {"fieldManager": "corral", "force": "true"}
        with pytest.raises(ValueError, match="patch_type"):
            await c.patch(NODES, "n1", {}, patch_type="yaml")
        with pytest.raises(ValueError, match="field_manager"):
            await c.patch(NODES, "n1", {}, patch_type="apply")
        with pytest.raises(ValueError, match="JSON patch"):
            await c.patch(NODES, "n1", {}, patch_type="json")


async def test_create_without_namespace_is_refused_client_side():
    async with serve() as api, ApiClient(api.url) as c:
        with pytest.raises(ValueError, match="metadata.namespace"):
            await c.create(PODS, {"metadata": {"name": "p"}})
        assert api.requests == []


async def test_list_all_follows_continue_tokens_and_fills_kind():
    async with serve() as api, ApiClient(api.url) as c:
        for i in range(7):
            api.seed("configmaps", cm(f"c{i}"))
        items, rv = await c.list_all(CONFIGMAPS, "ns1", page_size=3, label_selector="a=b")
        assert [o["metadata"]["name"] for o in items] == [f"c{i}" for i in range(7)]
        assert rv == "7"
        assert all(o["kind"] == "ConfigMap" and o["apiVersion"] == "v1" for o in items)
        pages = [r.query for r in api.requests]
        assert [q.get("continue") for q in pages] == [None, "3", "6"]
        assert all(q["limit"] == "3" and q["labelSelector"] == "a=b" for q in pages)


async def test_list_all_restarts_unpaginated_when_continue_expires():
    async with serve() as api, ApiClient(api.url) as c:
        for i in range(5):
            api.seed("configmaps", cm(f"c{i}"))
        api.script("GET", 410, "Expired", "continue token expired", when={"continue": "2"})
        items, _ = await c.list_all(CONFIGMAPS, "ns1", page_size=2)
        assert len(items) == 5
        assert "limit" not in api.requests[-1].query


async def test_reads_retry_on_503_and_429_with_backoff():
    clock = FakeClock()
    async with serve() as api, ApiClient(api.url, clock=clock) as c:
        api.seed("nodes", {"metadata": {"name": "n1"}})
        api.script("GET", 503, "ServiceUnavailable")
        api.script("GET", 429, "TooManyRequests", details={"retryAfterSeconds": 2})
        node = await run_with_clock(clock, c.get(NODES, "n1"))
        assert node["metadata"]["name"] == "n1"
        assert len(api.requests) == 3
        assert clock.monotonic() >= 2  # honoured retryAfterSeconds


async def test_reads_give_up_after_a_bound():
    clock = FakeClock()
    async with serve() as api, ApiClient(api.url, clock=clock) as c:
        for _ in range(MAX_READ_ATTEMPTS + 2):
            api.script("GET", 503, "ServiceUnavailable")
        with pytest.raises(errors.ServerError):
            await run_with_clock(clock, c.get(NODES, "n1"))
        assert len(api.requests) == MAX_READ_ATTEMPTS


async def test_writes_and_other_errors_are_never_retried():
    async with serve() as api, ApiClient(api.url, clock=FakeClock()) as c:
        api.script("POST", 503, "ServiceUnavailable")
        with pytest.raises(errors.ServerError):
            await c.create(NODES, {"metadata": {"name": "n1"}})
        api.script("GET", 500, "InternalError")
        with pytest.raises(errors.ServerError):
            await c.get(NODES, "n1")
        assert len(api.requests) == 2


async def test_connection_refused_is_api_connection_error():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    async with ApiClient(f"http://127.0.0.1:{port}") as c:
        with pytest.raises(errors.ApiConnectionError) as info:
            await c.create(NODES, {"metadata": {"name": "n1"}})
        assert info.value.status == 0


async def test_closed_client_refuses_requests():
    c = ApiClient("http://127.0.0.1:1")
    await c.close()
    with pytest.raises(errors.ApiConnectionError, match="closed"):
        await c.get(NODES, "n1")


def test_constructor_validates():
    with pytest.raises(ValueError, match="server"):
        ApiClient("127.0.0.1:6443")
    with pytest.raises(ValueError, match="ca_file"):
        ApiClient("https://127.0.0.1:6443", ca_file="/nonexistent/ca.crt")


async def test_watch_reassembles_split_chunks_and_yields_bookmarks():
    async with serve() as api, ApiClient(api.url) as c:
        stream = c.watch(CONFIGMAPS, "ns1", resource_version="5", timeout_seconds=60)
        first = asyncio.ensure_future(stream.__anext__())
        await api.wait_watchers()
        q = api.requests[-1].query
        assert q == {"watch": "true", "resourceVersion": "5", "timeoutSeconds": "60",
                     "allowWatchBookmarks": "true"}
        lines = (orjson.dumps({"type": "ADDED", "object": cm("a")}) + b"\n"
                 + orjson.dumps({"type": "BOOKMARK",
                                 "object": {"metadata": {"resourceVersion": "9"}}}) + b"\n")
        for i in range(0, len(lines), 7):  # arbitrary chunk boundaries
            api.push(lines[i:i + 7])
            await asyncio.sleep(0)
        async with asyncio.timeout(5):
            assert await first == ("ADDED", cm("a"))
            assert await stream.__anext__() == ("BOOKMARK", {"metadata": {"resourceVersion": "9"}})
            api.end_watches()
            with pytest.raises(StopAsyncIteration):
                await stream.__anext__()


async def test_watch_410_on_response_and_as_error_event():
    async with serve() as api, ApiClient(api.url) as c:
        api.script("GET", 410, "Expired", "too old", when={"watch": "true"})
        with pytest.raises(errors.GoneError):
            async for _ in c.watch(CONFIGMAPS, "ns1", resource_version="1"):
                pass
        api.compacted = 10
        with pytest.raises(errors.GoneError) as info:
            async for _ in c.watch(CONFIGMAPS, "ns1", resource_version="3"):
                pass
        assert "too old resource version" in info.value.message


async def test_leaving_a_watch_closes_the_stream():
    async with serve() as api, ApiClient(api.url) as c:
        api.emit("configmaps", "ADDED", cm("a"))
        async with asyncio.timeout(5):
            async for type_, _ in c.watch(CONFIGMAPS, "ns1", resource_version="0"):
                assert type_ == "ADDED"
                break
            while api.watches:  # the server sees the disconnect
                await asyncio.sleep(0.01)


async def test_create_not_full_answers_the_head_only():
    async with serve() as api, ApiClient(api.url) as c:
        head = await c.create(CONFIGMAPS, cm("a", k="v"), full=False)
        assert head == {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}
        assert api.requests[-1].method == "POST"
        with pytest.raises(errors.AlreadyExistsError):
            await c.create(CONFIGMAPS, cm("a"), full=False)


@pytest.mark.parametrize("obj", [
    {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-x7k2p", "namespace": "b"}, "spec": {}},
    {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": 'q"u\\o\u00e9'}},  # escapes: decoded in full
    {"kind": "Pod", "apiVersion": "v1", "metadata": {"namespace": "b", "name": "late"}},  # another order
    {"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": "web-"}, "spec": {}},  # no name
    {"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": "w-", "managedFields": [{"f": {}}],
                                                     "name": "w-x"}, "spec": {}, "status": {}},
    # a cut at the first '},"spec":' would fall inside metadata
    {"apiVersion": "v1", "kind": "X", "metadata": {"x": {"q": 1}, "spec": {"z": 1}, "name": "real"}, "spec": {}},
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns"}},  # no spec at all
])
def test_object_head_equals_the_decoded_objects_head(obj):
    raw = orjson.dumps(obj)
    want = {"apiVersion": obj["apiVersion"], "kind": obj["kind"],
            "metadata": {k: v for k, v in obj["metadata"].items() if k == "name"}}
    assert object_head(raw) == want
    assert object_head(b"  " + orjson.dumps(obj, option=orjson.OPT_INDENT_2)) == want


def test_object_head_refuses_what_is_not_an_object():
    with pytest.raises(errors.ApiError, match="not JSON"):
        object_head(b'{"apiVersion":"v1","kind":', "POST /api/v1/pods")
    with pytest.raises(errors.ApiError, match="expected an object"):
        object_head(b"[1]")




@pytest.mark.parametrize("batched", [True, False])
async def test_watch_delivers_what_preceded_an_error_event_then_raises(batched):
    gone = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 410, "reason": "Expired"}
    burst = b"".join(orjson.dumps(e) + b"\n" for e in (
        {"type": "ADDED", "object": cm("a")}, {"type": "MODIFIED", "object": cm("b")},
        {"type": "ERROR", "object": gone}, {"type": "ADDED", "object": cm("never")}))
    got: list = []

    async def consume(c: ApiClient) -> None:
        if batched:
            async for batch in c.watch_batches(CONFIGMAPS, "ns1"):
                assert batch
                got.extend(batch)
        else:
            async for event in c.watch(CONFIGMAPS, "ns1"):
                got.append(event)

    async with serve() as api, ApiClient(api.url) as c:
        task = asyncio.ensure_future(consume(c))
        await api.wait_watchers()
        api.push(burst)
        with pytest.raises(errors.GoneError):
            await asyncio.wait_for(task, 5)
        assert [(t, o["metadata"]["name"]) for t, o in got] == [("ADDED", "a"), ("MODIFIED", "b")]
