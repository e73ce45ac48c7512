"""The watch-fed namespace index: creates in a namespace it knows live skip
the store read; anything else (unknown, terminating, being deleted by this
server) is decided by the store, so no create lands in a dying namespace."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from corral.api.admission import require_live_namespace
from corral.api.context import ServerContext
from corral.api.errors import Forbidden, NotFound
from corral.api.namespaces import NamespaceIndex
from corral.api.objects import DeleteOptions
from corral.api.server import make_context
from corral.store.sqlite import SqliteStore


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


@pytest.fixture
async def ctx(tmp_path: Path) -> AsyncIterator[ServerContext]:
    store = SqliteStore(str(tmp_path / "state.db"))
    await store.start()
    context = make_context(store)
    index = NamespaceIndex(store, context.registry.lookup("", "v1", "namespaces").storage_prefix)
    index.start()
    context.objects.namespaces = index
    try:
        yield context
    finally:
        await index.stop()
        await store.close()


async def create_ns(ctx: ServerContext, name: str, finalizers: list[str] | None = None) -> None:
    rt = ctx.registry.lookup("", "v1", "namespaces")
    body = {"metadata": {"name": name, **({"finalizers": finalizers} if finalizers else {})}}
    await ctx.objects.create(rt, None, body)


async def test_live_namespaces_come_from_the_watch(ctx: ServerContext) -> None:
    index = ctx.objects.namespaces
    await create_ns(ctx, "team-a")
    await until(lambda: index.known_live("team-a"))
    await require_live_namespace(ctx.objects, ctx.registry, "team-a")
    assert not index.known_live("nowhere")
    with pytest.raises(NotFound):
        await require_live_namespace(ctx.objects, ctx.registry, "nowhere")


async def test_a_namespace_this_server_deletes_is_read_from_the_store_at_once(ctx: ServerContext) -> None:
    index = ctx.objects.namespaces
    rt = ctx.registry.lookup("", "v1", "namespaces")
    await create_ns(ctx, "doomed", finalizers=["example.com/hold"])
    await until(lambda: index.known_live("doomed"))
    _obj, gone = await ctx.objects.delete(rt, None, "doomed", DeleteOptions())
    assert not gone
    # No waiting for the watch: the very next create is refused.
    assert not index.known_live("doomed")
    with pytest.raises(Forbidden, match="being terminated"):
        await require_live_namespace(ctx.objects, ctx.registry, "doomed")


async def test_a_namespace_terminated_elsewhere_leaves_the_index_through_its_watch(ctx: ServerContext) -> None:
    """As a delete through another API server would: only the store changes."""
    index = ctx.objects.namespaces
    rt = ctx.registry.lookup("", "v1", "namespaces")
    await create_ns(ctx, "elsewhere")
    await until(lambda: index.known_live("elsewhere"))
    kv = await ctx.store.get(rt.key(None, "elsewhere"))
    await ctx.store.update(kv.key, kv.value.replace(b'"metadata":{', b'"metadata":{"deletionTimestamp":"x",'),
                           kv.mod_revision)
    await until(lambda: not index.known_live("elsewhere"))
    with pytest.raises(Forbidden):
        await require_live_namespace(ctx.objects, ctx.registry, "elsewhere")
    await ctx.store.delete(kv.key)
    await create_ns(ctx, "elsewhere")  # recreated: live again
    await until(lambda: index.known_live("elsewhere"))
