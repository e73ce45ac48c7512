"""The agent's TTL cache of ConfigMaps and Secrets read for volumes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from corral.agent.objectcache import ObjectCache
from corral.client.errors import NotFoundError, ServerError
from corral.client.resources import CONFIGMAPS, SECRETS


class CountingClient:
    """Answers GETs from a dict, counting them; ``gate`` holds reads open."""

    def __init__(self, objects: dict[tuple[str, str, str], dict[str, Any]]) -> None:
        self.objects = objects
        self.reads: list[tuple[str, str, str]] = []
        self.gate: asyncio.Event | None = None
        self.fail_with: Exception | None = None

    async def get(self, res: Any, name: str, namespace: str) -> dict[str, Any]:
        key = (res.plural, namespace, name)
        self.reads.append(key)
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_with is not None:
            raise self.fail_with
        if key not in self.objects:
            raise NotFoundError(404, "NotFound", f"{res.plural} {name!r} not found")
        return self.objects[key]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_one_read_serves_every_pod_until_the_ttl_passes() -> None:
    client = CountingClient({("configmaps", "ns", "ca"): {"data": {"ca.crt": "v1"}}})
    clock = Clock()
    cache = ObjectCache(client, ttl=5.0, clock=clock)  # type: ignore[arg-type]
    for _ in range(100):
        assert (await cache.get(CONFIGMAPS, "ca", "ns"))["data"]["ca.crt"] == "v1"
    assert len(client.reads) == 1
    client.objects[("configmaps", "ns", "ca")] = {"data": {"ca.crt": "v2"}}
    clock.now += 4.9
    assert (await cache.get(CONFIGMAPS, "ca", "ns"))["data"]["ca.crt"] == "v1"
    clock.now += 0.2
    assert (await cache.get(CONFIGMAPS, "ca", "ns"))["data"]["ca.crt"] == "v2"
    assert len(client.reads) == 2


async def test_concurrent_readers_share_one_request() -> None:
    client = CountingClient({("secrets", "ns", "s"): {"data": {}}})
    client.gate = asyncio.Event()
    cache = ObjectCache(client, clock=Clock())  # type: ignore[arg-type]
    readers = [asyncio.create_task(cache.get(SECRETS, "s", "ns")) for _ in range(20)]
    await asyncio.sleep(0)
    client.gate.set()
    assert all(r == {"data": {}} for r in await asyncio.gather(*readers))
    assert len(client.reads) == 1


async def test_kinds_and_namespaces_are_separate_entries() -> None:
    client = CountingClient({("configmaps", "a", "x"): {"k": 1}, ("secrets", "a", "x"): {"k": 2},
                             ("configmaps", "b", "x"): {"k": 3}})
    cache = ObjectCache(client, clock=Clock())  # type: ignore[arg-type]
    assert (await cache.get(CONFIGMAPS, "x", "a"))["k"] == 1
    assert (await cache.get(SECRETS, "x", "a"))["k"] == 2
    assert (await cache.get(CONFIGMAPS, "x", "b"))["k"] == 3


async def test_not_found_is_remembered_other_errors_are_not() -> None:
    client = CountingClient({})
    clock = Clock()
    cache = ObjectCache(client, ttl=5.0, clock=clock)  # type: ignore[arg-type]
    for _ in range(3):
        with pytest.raises(NotFoundError):
            await cache.get(CONFIGMAPS, "missing", "ns")
    assert len(client.reads) == 1
    clock.now += 6
    client.fail_with = ServerError(503, "ServiceUnavailable", "storage is unavailable")
    for _ in range(2):
        with pytest.raises(ServerError):
            await cache.get(CONFIGMAPS, "missing", "ns")
    assert len(client.reads) == 3  # a failed read is tried again at once
    client.fail_with = None
    client.objects[("configmaps", "ns", "missing")] = {"now": "here"}
    assert await cache.get(CONFIGMAPS, "missing", "ns") == {"now": "here"}
