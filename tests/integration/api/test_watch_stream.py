"""A watch stream written by one task per watcher: events, bookmarks after
quiet intervals (carrying the newest revision sent), the end at
timeoutSeconds, and 410 in-stream for a resourceVersion that is gone."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from corral.testing import TestServer, running_server


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[TestServer]:
    async with running_server(tmp_path) as srv:
        assert srv.ctx is not None
        srv.ctx.settings.watch_bookmark_interval = 0.3
        yield srv


@pytest.fixture
async def http(server: TestServer) -> AsyncIterator[aiohttp.ClientSession]:
    ctx = ssl.create_default_context(cafile=str(server.ca_file))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx),
                                     headers={"Authorization": f"Bearer {server.token}"}) as session:
        yield session


def cms(server: TestServer) -> str:
    return f"{server.url}/api/v1/namespaces/default/configmaps"


async def create(http: aiohttp.ClientSession, server: TestServer, name: str) -> int:
    body = {"metadata": {"name": name}, "data": {"k": "v"}}
    async with http.post(cms(server), json=body) as resp:
        assert resp.status == 201, await resp.text()
        return int((await resp.json())["metadata"]["resourceVersion"])


async def next_event(resp: aiohttp.ClientResponse) -> dict[str, Any]:
    line = await asyncio.wait_for(resp.content.readline(), 10)
    assert line, "stream ended"
    return orjson.loads(line)


async def test_events_then_bookmarks_with_the_newest_revision(server: TestServer, http: aiohttp.ClientSession) -> None:
    start = await create(http, server, "before")
    url = f"{cms(server)}?watch=1&allowWatchBookmarks=true&resourceVersion={start}"
    async with http.get(url) as resp:
        first = await next_event(resp)
        assert first["type"] == "BOOKMARK" and first["object"]["metadata"]["resourceVersion"] == str(start)
        rv = await create(http, server, "after")
        seen = [await next_event(resp) for _ in range(3)]
        added = [e for e in seen if e["type"] == "ADDED"]
        assert [e["object"]["metadata"]["name"] for e in added] == ["after"]
        bookmarks = [e for e in seen if e["type"] == "BOOKMARK"]
        assert bookmarks and bookmarks[-1]["object"]["metadata"]["resourceVersion"] == str(rv)


async def test_the_stream_ends_at_timeout_seconds(server: TestServer, http: aiohttp.ClientSession) -> None:
    started = time.monotonic()
    async with http.get(f"{cms(server)}?watch=1&timeoutSeconds=1") as resp:
        assert resp.status == 200
        await asyncio.wait_for(resp.read(), 15)  # returns once the server ends the stream
    assert time.monotonic() - started < 10


async def test_an_expired_resource_version_is_410_in_stream(server: TestServer, http: aiohttp.ClientSession) -> None:
    assert server.ctx is not None
    for i in range(3):
        await create(http, server, f"c{i}")
    await server.ctx.store.compact(await server.ctx.store.current_revision())
    async with http.get(f"{cms(server)}?watch=1&resourceVersion=1") as resp:
        event = await next_event(resp)
    assert event["type"] == "ERROR" and event["object"]["code"] == 410


async def test_a_quiet_field_selected_watch_is_bookmarked_at_the_newest_revision(
        server: TestServer, http: aiohttp.ClientSession) -> None:
    start = await create(http, server, "first")
    url = (f"{cms(server)}?watch=1&allowWatchBookmarks=true&resourceVersion={start}"
           "&fieldSelector=metadata.name%3Dnever")
    async with http.get(url) as resp:
        assert resp.status == 200
        rv = await create(http, server, "unrelated")  # not this watch's, but the resource moved on
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            event = await next_event(resp)
            assert event["type"] == "BOOKMARK"
            if int(event["object"]["metadata"]["resourceVersion"]) >= rv:
                break
        else:
            raise AssertionError("no bookmark reached the resource's newest revision")


async def test_a_table_watch_sends_the_headers_once_then_rows(server: TestServer, http: aiohttp.ClientSession) -> None:
    start = await create(http, server, "t0")
    accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
    async with http.get(f"{cms(server)}?watch=1&resourceVersion={start}", headers={"Accept": accept}) as resp:
        assert resp.status == 200
        names = ["t1", "t2", "t3"]
        for name in names:
            await create(http, server, name)
        events = [await next_event(resp) for _ in names]
    assert [e["type"] for e in events] == ["ADDED"] * 3
    assert [e["object"]["kind"] for e in events] == ["Table"] * 3
    assert [e["object"]["rows"][0]["cells"][0] for e in events] == names
    assert [bool(e["object"].get("columnDefinitions")) for e in events] == [True, False, False]
