"""Backends the store conformance suite runs against.

Every Store implementation appends a factory to ``BACKENDS``; each test in
test_conformance.py then runs once per backend. A factory gets a fresh
directory and the tuning a test asks for, and returns an unstarted store.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from corral.store.etcd import EtcdStore
from corral.store.etcd_conn import parse_etcd_url
from corral.store.protocol import Store
from corral.store.sqlite import SqliteStore
from fixtures.etcd import EtcdCluster, shared_cluster


@dataclass(frozen=True)
class Tuning:
    history_limit: int = 100_000
    watch_buffer: int = 4096


BackendFactory = Callable[[Path, Tuning], Store]


def sqlite_backend(directory: Path, tuning: Tuning) -> Store:
    directory.mkdir(parents=True, exist_ok=True)
    return SqliteStore(
        str(directory / "store.db"),
        history_limit=tuning.history_limit,
        watch_buffer=tuning.watch_buffer,
    )


@pytest.fixture(scope="session")
def etcd_cluster() -> Iterator[EtcdCluster]:
    yield from shared_cluster()


def etcd_backend(directory: Path, tuning: Tuning, cluster: EtcdCluster) -> Store:
    """A fresh key root per store: one etcd serves every test, none sees
    another's keys (revisions are etcd's, shared, and tests run one at a time)."""
    from dataclasses import replace

    options = parse_etcd_url(cluster.url())
    return EtcdStore(replace(options, history_limit=tuning.history_limit,
                             watch_buffer=tuning.watch_buffer))


class RemotePair:
    """A SQLite store served by a StoreService and used through a RemoteStore
    over a real Unix socket: the store as an API worker process sees it."""

    def __init__(self, directory: Path, tuning: Tuning) -> None:
        from corral.store.remote import RemoteStore
        from corral.store.service import StoreService

        self.owner = sqlite_backend(directory, tuning)
        self.service = StoreService(self.owner, directory / "store.sock")
        self.remote = RemoteStore(directory / "store.sock", watch_buffer=tuning.watch_buffer)

    async def start(self) -> None:
        await self.owner.start()
        await self.service.start()
        await self.remote.start()

    async def close(self) -> None:
        await self.remote.close()
        await self.service.close()
        await self.owner.close()

    def __getattr__(self, name: str) -> object:
        return getattr(self.remote, name)


def remote_backend(directory: Path, tuning: Tuning) -> Store:
    directory.mkdir(parents=True, exist_ok=True)
    return RemotePair(directory, tuning)  # type: ignore[return-value]


BACKENDS = [pytest.param(sqlite_backend, id="sqlite"), pytest.param(etcd_backend, id="etcd"),
            pytest.param(remote_backend, id="remote")]

OpenStore = Callable[..., Awaitable[Store]]


@pytest.fixture(params=BACKENDS)
async def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[OpenStore]:
    """``await open_store(history_limit=..., watch_buffer=...)`` → a started store,
    closed at teardown."""
    factory = request.param
    if factory is etcd_backend:
        cluster = request.getfixturevalue("etcd_cluster")
        factory = functools.partial(etcd_backend, cluster=cluster)
    stores: list[Store] = []

    async def open_(**tuning: int) -> Store:
        store = factory(tmp_path / f"backend-{len(stores)}", Tuning(**tuning))
        await store.start()
        stores.append(store)
        return store

    yield open_
    await asyncio.gather(*(store.close() for store in stores))


@pytest.fixture
async def store(open_store: OpenStore) -> Store:
    return await open_store()

