"""SharedInformers as two components in one process use it: both run the
set, the informers run once (one list and one watch per resource), both
components' handlers see each event, and the informers stop only when the
last of them stops."""

import asyncio
import contextlib

from client_fakeapi import serve

from corral.client.api import ApiClient
from corral.client.resources import PODS
from corral.controllers.informers import SharedInformers


def pod(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "ns1"},
            "spec": {"nodeName": ""}}


async def until(cond, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.005)


async def stop(task: asyncio.Task) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def watches(api) -> list:
    return [r for r in api.requests if r.query.get("watch") == "true"]


async def test_two_runners_share_one_list_one_watch_and_both_handlers_see_each_event():
    async with serve() as api, ApiClient(api.url) as c:
        api.seed("pods", pod("a"))
        shared = SharedInformers(c)
        seen_by: dict[str, list[str]] = {"scheduler": [], "controllers": []}
        for who in seen_by:
            shared.get(PODS).add_handler(on_add=lambda o, who=who: seen_by[who].append(o["metadata"]["name"]))
        first = asyncio.create_task(shared.run())
        second = asyncio.create_task(shared.run())
        await shared.get(PODS).wait_synced(timeout=5)
        await api.wait_watchers(1)
        api.emit("pods", "ADDED", pod("b"))
        await until(lambda: all(names == ["a", "b"] for names in seen_by.values()))
        assert len(watches(api)) == 1
        assert len([r for r in api.requests if r.method == "GET" and "watch" not in r.query]) == 1

        # One component stops (its term or its test ends): the other still hears.
        await stop(first)
        assert shared.running
        api.emit("pods", "ADDED", pod("c"))
        await until(lambda: seen_by["scheduler"][-1:] == ["c"])

        await stop(second)
        assert not shared.running
        await until(lambda: api.watches == [])


async def test_an_informer_asked_for_while_the_set_runs_starts_at_once():
    async with serve() as api, ApiClient(api.url) as c:
        api.seed("pods", pod("a"))
        shared = SharedInformers(c)
        shared.get(PODS)
        runner = asyncio.create_task(shared.run())
        try:
            await shared.get(PODS).wait_synced(timeout=5)
            late = shared.get(PODS, field_selector="spec.nodeName=")
            await late.wait_synced(timeout=5)
            assert late.cache.get("ns1/a") is not None
        finally:
            await stop(runner)


async def test_a_set_runs_again_after_every_runner_stopped():
    """A component started afresh (a new leader term) over the same set
    resumes the informers, caches kept."""
    async with serve() as api, ApiClient(api.url) as c:
        api.seed("pods", pod("a"))
        shared = SharedInformers(c)
        informer = shared.get(PODS)
        runner = asyncio.create_task(shared.run())
        await informer.wait_synced(timeout=5)
        await stop(runner)
        runner = asyncio.create_task(shared.run())
        try:
            await api.wait_watchers(1)
            api.emit("pods", "ADDED", pod("b"))
            await until(lambda: informer.cache.get("ns1/b") is not None)
        finally:
            await stop(runner)
