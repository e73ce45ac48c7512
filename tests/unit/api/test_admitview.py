"""The admission view: what it answers from the store's watch, and when it
says MISS so that the caller reads the store instead."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest

from corral.api.admit_serviceaccount import admit_service_account
from corral.api.admitview import FORCE_LIVE_SECONDS, MISS, AdmissionView
from corral.api.errors import NotFound
from corral.resources.builtin import build_registry
from corral.resources.priorityclasses import admit_pod_priority
from corral.store.sqlite import SqliteStore

REGISTRY = build_registry()


def key(plural: str, namespace: str | None, name: str) -> str:
    group = "scheduling.k8s.io" if plural == "priorityclasses" else ""
    rt = REGISTRY.lookup(group, "v1", plural)
    assert rt is not None
    return rt.key(namespace, name)


def obj(name: str, namespace: str | None = None, **fields: Any) -> bytes:
    meta: dict[str, Any] = {"name": name} | ({"namespace": namespace} if namespace else {})
    return orjson.dumps({"metadata": meta | fields.pop("meta", {}), **fields})


async def until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.005)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def view(store: SqliteStore) -> AsyncIterator[AdmissionView]:
    await store.create(key("serviceaccounts", "a", "default"), obj("default", "a"))
    await store.create(key("priorityclasses", None, "low"), obj("low", value=10, globalDefault=True))
    v = AdmissionView(store, REGISTRY, clock=Clock())
    v.start()
    await until(lambda: v.synced)
    try:
        yield v
    finally:
        await v.stop()


async def test_answers_follow_the_watch(store: SqliteStore, view: AdmissionView) -> None:
    assert view.get("serviceaccounts", "a", "default") == {}
    assert [c["metadata"]["name"] for c in view.listed("priorityclasses") or []] == ["low"]
    assert view.get("serviceaccounts", "a", "quiet") is MISS  # not held: the caller reads the store
    await store.create(key("serviceaccounts", "a", "quiet"), obj("quiet", "a", automountServiceAccountToken=False))
    await until(lambda: view.get("serviceaccounts", "a", "quiet") is not MISS)
    assert view.get("serviceaccounts", "a", "quiet") == {"automountServiceAccountToken": False}

    kv = await store.create(key("priorityclasses", None, "high"), obj("high", value=99))
    await until(lambda: len(view.listed("priorityclasses") or []) == 2)
    await store.update(kv.key, obj("high", value=99, globalDefault=True), kv.mod_revision)
    await until(lambda: view.get("priorityclasses", "", "high").get("globalDefault") is True)
    await store.delete(key("priorityclasses", None, "low"))
    await until(lambda: view.get("priorityclasses", "", "low") is MISS)
    assert [c["metadata"]["name"] for c in view.listed("priorityclasses") or []] == ["high"]


async def test_namespace_policies_and_levels(store: SqliteStore, view: AdmissionView) -> None:
    assert not view.may_have("limitranges", "a") and view.listed("limitranges", "a") == []
    assert view.get("namespaces", "", "a") is MISS
    await store.create(key("namespaces", None, "a"),
                       obj("a", meta={"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}))
    await store.create(key("namespaces", None, "b"), obj("b"))
    lr = {"limits": [{"type": "Container", "default": {"cpu": "1"}}]}
    await store.create(key("limitranges", "a", "lr"), obj("lr", "a", spec=lr))
    await store.create(key("resourcequotas", "a", "q"), obj("q", "a"))
    await until(lambda: view.may_have("resourcequotas", "a") and view.get("namespaces", "", "b") is not MISS)
    assert view.get("namespaces", "", "a") == "restricted" and view.get("namespaces", "", "b") is None
    assert [r["spec"] for r in view.listed("limitranges", "a") or []] == [lr]
    assert not view.may_have("limitranges", "b") and not view.may_have("resourcequotas", "b")
    await store.delete(key("resourcequotas", "a", "q"))
    await until(lambda: not view.may_have("resourcequotas", "a"))


async def test_a_touched_kind_is_read_live_for_a_while(view: AdmissionView) -> None:
    clock = view.clock
    assert isinstance(clock, Clock)
    view.touched("limitranges", "a")
    assert view.listed("limitranges", "a") is None and view.may_have("limitranges", "a")
    assert view.listed("limitranges", "b") == []  # other namespaces still answered
    clock.now += FORCE_LIVE_SECONDS + 0.1
    assert view.listed("limitranges", "a") == []


async def test_bounded_a_kind_past_the_limit_is_read_live(store: SqliteStore) -> None:
    v = AdmissionView(store, REGISTRY, max_objects=2)
    v.start()
    try:
        await until(lambda: v.synced)
        for name in ("x", "y"):
            await store.create(key("serviceaccounts", "a", name), obj(name, "a"))
        await until(lambda: v.get("serviceaccounts", "a", "y") is not MISS)
        await store.create(key("serviceaccounts", "a", "z"), obj("z", "a"))
        await until(lambda: v.get("serviceaccounts", "a", "x") is MISS)
        assert v.listed("serviceaccounts", "a") is None and v.size() == 0
        assert v.listed("priorityclasses") == []  # other kinds unaffected
    finally:
        await v.stop()


class _Objects:
    """The store read the admission functions fall back to; counts reads."""

    def __init__(self, found: dict[tuple[str, str], dict[str, Any]]) -> None:
        self.found, self.reads = found, 0

    async def get(self, rt: Any, namespace: str | None, name: str) -> dict[str, Any]:
        self.reads += 1
        if (namespace or "", name) not in self.found:
            raise NotFound(f"{name} not found")
        return self.found[(namespace or "", name)]


def _pod(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}], **spec}}


async def test_admission_reads_the_view_and_falls_back_on_a_miss(view: AdmissionView) -> None:
    objects = _Objects({("a", "fresh"): {"automountServiceAccountToken": False},
                        ("", "new-class"): {"metadata": {"name": "new-class"}, "value": 7,
                                            "preemptionPolicy": "Never"}})
    pod = _pod()
    await admit_service_account(objects, REGISTRY, "a", pod, view)
    assert objects.reads == 0 and len(pod["spec"]["volumes"]) == 1
    fresh = _pod(serviceAccountName="fresh")  # created a moment ago, not in the view yet
    await admit_service_account(objects, REGISTRY, "a", fresh, view)
    assert objects.reads == 1 and "volumes" not in fresh["spec"]

    class Ctx:
        registry = REGISTRY

    ctx = Ctx()
    ctx.objects = objects  # type: ignore[attr-defined]
    plain = _pod()
    await admit_pod_priority(ctx, plain, view)  # the global default, from the view
    assert plain["spec"]["priorityClassName"] == "low" and plain["spec"]["priority"] == 10
    named = _pod(priorityClassName="new-class")
    await admit_pod_priority(ctx, named, view)
    assert objects.reads == 2 and named["spec"]["priority"] == 7 and named["spec"]["preemptionPolicy"] == "Never"


async def test_a_broken_watch_relists_without_leaving_followers_behind(
        store: SqliteStore, view: AdmissionView, monkeypatch: pytest.MonkeyPatch) -> None:
    from corral.api import storefollower

    monkeypatch.setattr(storefollower, "RELIST_DELAY", 0.01)
    before = len(asyncio.all_tasks())
    real_watch, broken = store.watch, []

    def watch(prefix: str, after: int) -> Any:
        if "serviceaccounts" in prefix and not broken:
            broken.append(prefix)
            raise RuntimeError("the watch broke")
        return real_watch(prefix, after)

    monkeypatch.setattr(store, "watch", watch)
    await view.stop()
    view.start()
    await until(lambda: bool(broken) and view.synced)
    await store.create(key("serviceaccounts", "a", "later"), obj("later", "a"))
    await until(lambda: view.get("serviceaccounts", "a", "later") is not MISS)
    assert len(asyncio.all_tasks()) <= before
