"""The client against the real corral API server (TLS, token, real store)."""

import asyncio
import contextlib

import pytest

from corral.client import errors
from corral.client.api import ApiClient
from corral.client.events import EventRecorder
from corral.client.informer import Informer
from corral.client.resources import CONFIGMAPS, EVENTS, NAMESPACES, NODES, PODS
from corral.testing import running_server


def cm(name: str, ns: str = "default", **data: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": ns, "labels": {"app": "t"}}, "data": data}


async def until(cond, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def running(inf: Informer):
    task = asyncio.ensure_future(inf.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_crud_over_tls_from_kubeconfig(tmp_path):
    async with running_server(tmp_path) as srv, \
            ApiClient.from_kubeconfig(str(srv.kubeconfig)) as c:
        created = await c.create(CONFIGMAPS, cm("a", k="v"))
        assert created["metadata"]["uid"] and created["metadata"]["resourceVersion"]
        with pytest.raises(errors.AlreadyExistsError):
            await c.create(CONFIGMAPS, cm("a"))
        got = await c.get(CONFIGMAPS, "a", "default")
        assert got["data"] == {"k": "v"}

        got["data"]["k"] = "v2"
        updated = await c.replace(CONFIGMAPS, got)
        assert updated["data"]["k"] == "v2"
        with pytest.raises(errors.ConflictError):
            await c.replace(CONFIGMAPS, got)  # stale resourceVersion

        patched = await c.patch(CONFIGMAPS, "a", {"data": {"x": "1"}}, "default")
        assert patched["data"] == {"k": "v2", "x": "1"}
        patched = await c.patch(CONFIGMAPS, "a", [{"op": "remove", "path": "/data/x"}], "default",
                                patch_type="json")
        assert patched["data"] == {"k": "v2"}

        for i in range(5):
            await c.create(CONFIGMAPS, cm(f"p{i}"))
        items, rv = await c.list_all(CONFIGMAPS, "default", page_size=2, label_selector="app=t")
        assert sorted(o["metadata"]["name"] for o in items) == ["a"] + [f"p{i}" for i in range(5)]
        assert int(rv) >= int(patched["metadata"]["resourceVersion"])
        assert all(o["kind"] == "ConfigMap" for o in items)

        await c.delete(CONFIGMAPS, "a", "default")
        with pytest.raises(errors.NotFoundError):
            await c.get(CONFIGMAPS, "a", "default")
        with pytest.raises(errors.InvalidError):
            await c.create(CONFIGMAPS, cm("Not_A_Valid_Name"))


async def test_wrong_token_and_wrong_ca_are_refused(tmp_path):
    async with running_server(tmp_path) as srv:
        async with ApiClient(srv.url, token="wrong", ca_file=str(srv.ca_file)) as c:
            with pytest.raises(errors.UnauthorizedError):
                await c.get(NAMESPACES, "default")
        async with ApiClient(srv.url, token=srv.token) as c:  # system CAs only
            with pytest.raises(errors.ApiConnectionError):
                await c.create(NAMESPACES, {"metadata": {"name": "x"}})


POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
       "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


async def test_status_subresource(tmp_path):
    async with running_server(tmp_path) as srv, srv.client() as c:
        pod = await c.create(PODS, POD)
        pod["status"] = {**pod.get("status", {}), "phase": "Running"}
        updated = await c.replace_status(PODS, pod)
        assert updated["status"]["phase"] == "Running"
        patched = await c.patch(PODS, "p", {"status": {"phase": "Succeeded"}}, "default",
                                subresource="status")
        assert patched["status"]["phase"] == "Succeeded"


async def test_binding_subresource(tmp_path):
    async with running_server(tmp_path) as srv, srv.client() as c:
        await c.create(NODES, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}})
        await c.create(PODS, POD)
        await c.post_subresource(PODS, "p", "default", "binding", {
            "apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"},
            "target": {"kind": "Node", "name": "n1"}})
        bound = await c.get(PODS, "p", "default")
        assert bound["spec"]["nodeName"] == "n1"


async def test_watch_stream_from_the_real_server(tmp_path):
    async with running_server(tmp_path) as srv, srv.client() as c:
        _, rv = await c.list_all(CONFIGMAPS, "default")
        stream = c.watch(CONFIGMAPS, "default", resource_version=rv, timeout_seconds=30)
        await c.create(CONFIGMAPS, cm("w"))
        await c.delete(CONFIGMAPS, "w", "default")
        async with asyncio.timeout(10):
            seen = []
            async for type_, obj in stream:
                if type_ != "BOOKMARK":
                    seen.append((type_, obj["metadata"]["name"]))
                if len(seen) == 2:
                    break
        assert seen == [("ADDED", "w"), ("DELETED", "w")]


async def test_informer_sees_add_update_delete(tmp_path):
    async with running_server(tmp_path) as srv, srv.client() as c:
        await c.create(CONFIGMAPS, cm("pre"))
        inf = Informer(c, CONFIGMAPS, namespace="default")
        log: list[tuple[str, str]] = []
        inf.add_handler(on_add=lambda o: log.append(("add", o["metadata"]["name"])),
                        on_update=lambda old, new: log.append(("update", new["metadata"]["name"])),
                        on_delete=lambda o: log.append(("delete", o["metadata"]["name"])))
        inf.add_index("app", lambda o: [o["metadata"].get("labels", {}).get("app", "")])
        async with running(inf):
            await inf.wait_synced(timeout=10)
            assert log == [("add", "pre")]
            await c.create(CONFIGMAPS, cm("a"))
            await c.patch(CONFIGMAPS, "a", {"data": {"k": "v"}}, "default")
            await c.delete(CONFIGMAPS, "pre", "default")
            await until(lambda: len(log) == 4)
            assert log[1:] == [("add", "a"), ("update", "a"), ("delete", "pre")]
            assert inf.cache.keys() == ["default/a"]
            assert inf.cache.get("default/a")["data"] == {"k": "v"}
            assert [o["metadata"]["name"] for o in inf.cache.by_index("app", "t")] == ["a"]


async def test_informer_recovers_from_410_by_relisting(tmp_path):
    async with running_server(tmp_path) as srv, srv.client() as c:
        for name in ("keep", "change", "gone"):
            await c.create(CONFIGMAPS, cm(name))
        inf = Informer(c, CONFIGMAPS, namespace="default")
        log: list[tuple[str, str]] = []
        inf.add_handler(on_add=lambda o: log.append(("add", o["metadata"]["name"])),
                        on_update=lambda old, new: log.append(("update", new["metadata"]["name"])),
                        on_delete=lambda o: log.append(("delete", o["metadata"]["name"])))
        async with running(inf):
            await inf.wait_synced(timeout=10)
        log.clear()
        # While the informer is stopped, things change and history is compacted.
        await c.patch(CONFIGMAPS, "change", {"data": {"v": "2"}}, "default")
        await c.delete(CONFIGMAPS, "gone", "default")
        await c.create(CONFIGMAPS, cm("new"))
        store = srv.ctx.store
        await store.compact(await store.current_revision())
        with pytest.raises(errors.GoneError):
            async for _ in c.watch(CONFIGMAPS, "default", resource_version=inf.resource_version):
                break
        async with running(inf):
            await until(lambda: inf.lists == 2 and len(log) == 3)
            assert sorted(log) == [("add", "new"), ("delete", "gone"), ("update", "change")]
            assert sorted(inf.cache.keys()) == ["default/change", "default/keep", "default/new"]
            await c.create(CONFIGMAPS, cm("after"))  # and it watches again
            await until(lambda: "default/after" in inf.cache)


async def test_event_recorder_against_the_real_server(tmp_path):
    async with running_server(tmp_path) as srv, srv.client() as c:
        obj = await c.create(CONFIGMAPS, cm("subject"))
        rec = EventRecorder(c, "test-component", host="h1")
        task = asyncio.ensure_future(rec.run())
        rec.record(obj, "Warning", "Broken", "it broke")
        await until(lambda: rec.written == 1)
        rec.record(obj, "Warning", "Broken", "it broke")
        await until(lambda: rec.written == 2)
        await rec.close()
        await asyncio.wait_for(task, 5)
        assert rec.failed == 0
        items, _ = await c.list_all(EVENTS, "default")
        [ev] = [e for e in items if e["involvedObject"]["name"] == "subject"]
        assert ev["count"] == 2 and ev["reason"] == "Broken" and ev["type"] == "Warning"
        assert ev["involvedObject"]["uid"] == obj["metadata"]["uid"]
        assert ev["source"]["component"] == "test-component"


async def test_the_servers_create_answer_is_read_from_its_head(tmp_path):
    """A generateName create with ``full=False``: the name the server chose,
    read from the answer's metadata alone (the server begins objects with
    apiVersion, kind, metadata and puts spec after it)."""
    from corral.client.objecthead import _AFTER_METADATA, _HEAD

    async with running_server(tmp_path) as srv, srv.client() as c:
        tpl = {"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": "web-", "namespace": "default"},
               "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
        raw = await c.request_bytes("POST", PODS.path("default"), json=tpl)
        found = _HEAD.match(raw)
        assert found is not None and raw.find(_AFTER_METADATA, found.end()) > 0, raw[:120]
        head = await c.create(PODS, tpl, full=False)
        assert head["metadata"]["name"].startswith("web-")
        got = await c.get(PODS, head["metadata"]["name"], "default")
        assert got["metadata"]["generateName"] == "web-"


async def test_a_status_write_can_skip_reading_the_answer(tmp_path):
    """``patch``/``replace_status`` with ``full=False``: the write is done
    (and its errors raised) but only the answer's head is read, as a node's
    status write needs."""
    from corral.client.errors import NotFoundError

    async with running_server(tmp_path) as srv, srv.client() as c:
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
               "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
        await c.create(PODS, pod)
        head = await c.patch(PODS, "p", {"status": {"phase": "Running"}}, "default",
                             subresource="status", full=False)
        assert head == {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}
        assert (await c.get(PODS, "p", "default"))["status"]["phase"] == "Running"
        stored = await c.get(PODS, "p", "default")
        head = await c.replace_status(PODS, dict(stored, status={"phase": "Succeeded"}), full=False)
        assert head == {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}
        assert (await c.get(PODS, "p", "default"))["status"]["phase"] == "Succeeded"
        with pytest.raises(errors.ConflictError):  # a stale write still fails
            await c.replace_status(PODS, dict(stored, status={"phase": "Failed"}), full=False)
        with pytest.raises(NotFoundError):
            await c.patch(PODS, "gone", {"status": {"phase": "Running"}}, "default",
                          subresource="status", full=False)
