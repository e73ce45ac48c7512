"""A binding through ``ObjectStore.update_fields`` stores exactly what the
general update path stores (defaulting and whole-pod validation again),
refuses what it refused, and judges the node name it sets."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from corral.api.errors import Conflict, Invalid
from corral.api.objects import DeleteOptions, ObjectStore
from corral.api.subresources import bind_pod
from corral.clock import FakeClock
from corral.resources.builtin import build_registry
from corral.store.sqlite import SqliteStore

REGISTRY = build_registry()
PODS = REGISTRY.lookup("", "v1", "pods")
NOW = "2026-11-27T05:00:00Z"

POD_SHAPES: list[dict[str, Any]] = [
    {"spec": {"containers": [{"name": "c", "image": "i:1"}]}},
    {"spec": {"containers": [{"name": "c", "image": "i:1",
                              "resources": {"requests": {"cpu": "100m"}, "limits": {"cpu": "100m"}}}],
              "volumes": [{"name": "s", "secret": {"secretName": "top"}}]},
     "status": {"conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]}},
    {"metadata": {"labels": {"app": "web"}, "annotations": {"a": "b"}},
     "spec": {"containers": [{"name": "c", "image": "i:1"}], "nodeName": "",
              "tolerations": [{"key": "k", "operator": "Exists"}]},
     "status": {"conditions": [{"type": "Initialized", "status": "True"}]}},
]


def _general_transform(name: str, node: str) -> Any:
    """The binding as it was written before update_fields: a transform of a
    deep copy, then defaulting and validation of the whole pod."""

    def transform(pod: dict[str, Any]) -> dict[str, Any]:
        spec = pod.setdefault("spec", {})
        if pod["metadata"].get("deletionTimestamp"):
            raise Conflict(f"pod {name} is being deleted, cannot be assigned to a host")
        if spec.get("nodeName"):
            raise Conflict(f"pod {name} is already assigned to node \"{spec['nodeName']}\"")
        spec["nodeName"] = node
        status = pod.setdefault("status", {})
        conditions = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
        conditions.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                           "lastTransitionTime": NOW})
        status["conditions"] = conditions
        return pod

    return transform


async def _objects(store: SqliteStore) -> ObjectStore:
    return ObjectStore(store, FakeClock())


async def _create(objects: ObjectStore, name: str, shape: dict[str, Any]) -> None:
    pod = orjson.loads(orjson.dumps(shape))
    pod.setdefault("metadata", {})["name"] = name
    await objects.create(PODS, "default", pod)


async def _stored(store: SqliteStore, name: str) -> dict[str, Any]:
    kv = await store.get(PODS.key("default", name))
    assert kv is not None
    obj: dict[str, Any] = orjson.loads(kv.value)
    return obj


@pytest.mark.parametrize("shape", POD_SHAPES)
async def test_binding_stores_what_the_general_path_stores(store: SqliteStore, shape: dict[str, Any]) -> None:
    objects = await _objects(store)
    await _create(objects, "fast", shape)
    await _create(objects, "slow", shape)
    fast = await bind_pod(objects, PODS, "default", "fast", "node-1", NOW)
    slow = await objects.update(PODS, "default", "slow", _general_transform("slow", "node-1"), subresource="binding")
    stored_fast, stored_slow = await _stored(store, "fast"), await _stored(store, "slow")
    for obj in (stored_fast, stored_slow, fast, slow):
        for key in ("name", "uid", "creationTimestamp", "resourceVersion"):
            obj["metadata"].pop(key, None)
    assert orjson.dumps(stored_fast) == orjson.dumps(stored_slow)  # same fields, same order
    assert fast == slow
    assert stored_fast["spec"]["nodeName"] == "node-1"
    assert stored_fast["metadata"]["generation"] == 2


async def test_binding_refuses_a_bound_or_deleted_pod(store: SqliteStore) -> None:
    objects = await _objects(store)
    await _create(objects, "p", POD_SHAPES[0])
    await bind_pod(objects, PODS, "default", "p", "node-1", NOW)
    with pytest.raises(Conflict, match='already assigned to node "node-1"'):
        await bind_pod(objects, PODS, "default", "p", "node-2", NOW)

    await _create(objects, "q", {**POD_SHAPES[0], "metadata": {"finalizers": ["x/y"]}})
    _, gone = await objects.delete(PODS, "default", "q", DeleteOptions())
    assert not gone  # the finalizer holds it
    with pytest.raises(Conflict, match="being deleted"):
        await bind_pod(objects, PODS, "default", "q", "node-1", NOW)


async def test_binding_judges_the_node_name(store: SqliteStore) -> None:
    objects = await _objects(store)
    await _create(objects, "p", POD_SHAPES[0])
    with pytest.raises(Invalid) as caught:
        await bind_pod(objects, PODS, "default", "p", "Not_A_Node", NOW)
    assert "spec.nodeName" in str(caught.value)
    assert "nodeName" not in (await _stored(store, "p"))["spec"]  # nothing was written


async def test_binding_a_missing_pod_is_not_found(store: SqliteStore) -> None:
    from corral.api.errors import NotFound

    with pytest.raises(NotFound):
        await bind_pod(await _objects(store), PODS, "default", "nope", "node-1", NOW)


async def test_reads_only_writes_share_the_fanout_parse_and_never_modify_it(store: SqliteStore) -> None:
    """A binding and a reads-only status write take the stored pod from the
    watch fan-out's cache (no second parse) and leave that shared copy as
    it was: watchers are sent it."""
    from corral.api.fanout import WatchFanout

    objects = await _objects(store)
    fanout = WatchFanout()
    hits: list[Any] = []

    def counting(kv: Any) -> dict[str, Any]:
        obj = fanout.decode(kv)
        hits.append(obj)
        return obj

    objects.shared_decode = counting
    await _create(objects, "p", POD_SHAPES[1])
    kv = await store.get(PODS.key("default", "p"))
    parsed = fanout.decode(kv)  # as the node authorizer's follow or a watcher would
    before = orjson.dumps(parsed)
    await bind_pod(objects, PODS, "default", "p", "node-1", NOW)
    assert hits == [parsed]
    assert orjson.dumps(parsed) == before

    kv = await store.get(PODS.key("default", "p"))
    bound = fanout.decode(kv)
    bound_bytes = orjson.dumps(bound)
    running = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True", "lastProbeTime": None}]}

    def status_write(current: dict[str, Any]) -> dict[str, Any]:
        return {"metadata": {"name": "p"}, "status": running}

    updated = await objects.update(PODS, "default", "p", status_write, subresource="status",
                                   transform_reads_only=True)
    assert hits[-1] is bound
    assert orjson.dumps(bound) == bound_bytes
    assert updated["status"] == {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    assert updated["spec"]["nodeName"] == "node-1"
    again = await objects.update(PODS, "default", "p", status_write, subresource="status",
                                 transform_reads_only=True)  # a no-op: the caller's own copy back
    assert again == updated | {"metadata": again["metadata"]} and again is not hits[-1]
