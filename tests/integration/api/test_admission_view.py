"""Admission reads PriorityClasses, ServiceAccounts, LimitRanges and
namespace labels from a watch-fed view: a pod right after the object it
uses is still admitted as a store read would admit it, changes reach the
view, and the audit log loses nothing on a clean stop."""

from __future__ import annotations

import asyncio
import http.client
import json
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from tests.conftest import CorralProcess, wait_for

from corral.client.errors import ForbiddenError
from corral.client.resources import LIMITRANGES, NAMESPACES, PODS, SERVICEACCOUNTS, Resource
from corral.testing import running_server

pytestmark = pytest.mark.timeout(90)
PCS = Resource("scheduling.k8s.io", "v1", "priorityclasses", "PriorityClass", False)


def pc(name: str, value: int, **extra: Any) -> dict[str, Any]:
    return {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": name},
            "value": value, **extra}


def pod(name: str, namespace: str = "default", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace},
            "spec": {"containers": [{"name": "c", "image": "x"}], **spec}}


def view_of(srv: Any) -> Any:
    return srv.security.policies.view


def held(view: Any, plural: str, name: str) -> Any:
    """What the view holds of a cluster-scoped object, whether or not it would answer now."""
    return view._data[plural].get("", {}).get(name)


async def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.01)


async def test_objects_used_right_after_their_creation(tmp_path: Path) -> None:
    async with running_server(tmp_path) as srv, srv.client() as c:
        await until(lambda: view_of(srv).synced)
        for i in range(5):
            await c.create(PCS, pc(f"batch{i}", 100 + i, preemptionPolicy="Never"))
            p = await c.create(PODS, pod(f"b{i}", priorityClassName=f"batch{i}"))
            assert p["spec"]["priority"] == 100 + i and p["spec"]["preemptionPolicy"] == "Never"
            await c.create(SERVICEACCOUNTS, {"metadata": {"name": f"sa{i}"}, "automountServiceAccountToken": False},
                           "default")
            s = await c.create(PODS, pod(f"s{i}", serviceAccountName=f"sa{i}"))
            assert s["spec"]["serviceAccountName"] == f"sa{i}" and "volumes" not in s["spec"]
        await c.create(PCS, pc("normal", 1000, globalDefault=True))
        d = await c.create(PODS, pod("d"))
        assert d["spec"]["priorityClassName"] == "normal" and d["spec"]["priority"] == 1000

        await c.create(NAMESPACES, {"metadata": {"name": "lr"}})
        limits = {"limits": [{"type": "Container", "default": {"cpu": "500m"}, "max": {"cpu": "1"}}]}
        await c.create(LIMITRANGES, {"metadata": {"name": "bounds"}, "spec": limits}, "lr")
        plain = await c.create(PODS, pod("plain", "lr"), "lr")
        assert plain["spec"]["containers"][0]["resources"]["limits"] == {"cpu": "500m"}


async def test_changes_and_deletes_reach_the_view(tmp_path: Path) -> None:
    async with running_server(tmp_path) as srv, srv.client() as c:
        view = view_of(srv)
        await until(lambda: view.synced)
        await c.create(PCS, pc("first", 50, globalDefault=True))
        await until(lambda: held(view, "priorityclasses", "first") is not None)
        await c.patch(PCS, "first", {"globalDefault": False})
        await until(lambda: held(view, "priorityclasses", "first").get("globalDefault") is False)
        view._touched.clear()  # answer from the view, not the write's read-your-writes window
        assert (await c.create(PODS, pod("p0")))["spec"]["priority"] == 0
        await c.delete(PCS, "first")
        await until(lambda: held(view, "priorityclasses", "first") is None)
        with pytest.raises(ForbiddenError, match="no PriorityClass with name first was found"):
            await c.create(PODS, pod("p1", priorityClassName="first"))

        await c.create(NAMESPACES, {"metadata": {"name": "locked"}})
        await c.patch(NAMESPACES, "locked", {"metadata": {"labels": {
            "pod-security.kubernetes.io/enforce": "restricted"}}})
        await until(lambda: held(view, "namespaces", "locked") == "restricted")
        view._touched.clear()
        with pytest.raises(ForbiddenError, match='violates PodSecurity "restricted:latest"'):
            await c.create(PODS, pod("root", "locked"), "locked")


async def test_audit_lines_all_present_after_a_clean_stop(tmp_path: Path) -> None:
    count = 40
    cms = Resource("", "v1", "configmaps", "ConfigMap", True)
    async with running_server(tmp_path) as srv, srv.client() as c:
        for i in range(count):
            await c.create(cms, {"metadata": {"name": f"cm{i}"}}, "default")
            await c.get(cms, f"cm{i}", "default")
    events = [orjson.loads(line) for line in (tmp_path / "server" / "audit.log").read_bytes().splitlines()]
    on_cms = [e for e in events if e.get("objectRef", {}).get("resource") == "configmaps"]
    assert sum(e["verb"] == "create" for e in on_cms) == count
    assert {e["objectRef"]["name"] for e in on_cms if e["verb"] == "get"} == {f"cm{i}" for i in range(count)}


def test_through_several_api_workers(tmp_path: Path) -> None:
    """Each request on a new connection, so the kernel spreads them over the
    workers: an object written through one is used at once through another."""
    proc = CorralProcess("server", tmp_path / "data", "--api-workers", "2")
    try:
        proc.wait_ready()
        tls = ssl.create_default_context(cafile=str(proc.data_dir / "pki" / "ca.crt"))
        token = proc.token()

        def call(method: str, path: str, body: object) -> tuple[int, dict[str, Any]]:
            conn = http.client.HTTPSConnection("127.0.0.1", proc.port, context=tls, timeout=30)
            try:
                conn.request(method, path, body=json.dumps(body).encode(),
                             headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
                response = conn.getresponse()
                return response.status, json.loads(response.read() or b"{}")
            finally:
                conn.close()

        wait_for(lambda: call("POST", "/api/v1/namespaces", {"metadata": {"name": "w"}})[0] in (201, 409), 30,
                 message="the namespace")
        for i in range(8):
            assert call("POST", "/apis/scheduling.k8s.io/v1/priorityclasses", pc(f"c{i}", i + 1))[0] == 201
            status, made = call("POST", "/api/v1/namespaces/w/pods", pod(f"p{i}", "w", priorityClassName=f"c{i}"))
            assert status == 201 and made["spec"]["priority"] == i + 1, made
            sa = {"metadata": {"name": f"sa{i}"}, "automountServiceAccountToken": False}
            assert call("POST", "/api/v1/namespaces/w/serviceaccounts", sa)[0] == 201
            status, made = call("POST", "/api/v1/namespaces/w/pods", pod(f"s{i}", "w", serviceAccountName=f"sa{i}"))
            assert status == 201 and "volumes" not in made["spec"], made
    finally:
        proc.stop()
