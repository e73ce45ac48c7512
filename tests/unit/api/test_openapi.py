"""The OpenAPI v3 documents: structure, extensions, caching, and the real
kubectl reading them (``explain`` and validation through ``fieldValidation``)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from corral.api.openapi import (
    openapi_v3_document,
    openapi_v3_document_bytes,
    openapi_v3_index,
)
from corral.resources.registry import Registry
from corral.resources.schemas import kind_schema
from corral.resources.types import ResourceType

KUBECTL = shutil.which("kubectl")


def rt(group: str, version: str, kind: str, plural: str, namespaced: bool = True,
       subresources: tuple[str, ...] = ()) -> ResourceType:
    return ResourceType(
        group=group, version=version, kind=kind, plural=plural, singular=kind.lower(),
        namespaced=namespaced, schema=kind_schema(group, version, kind), subresources=subresources,
    )


def make_registry() -> Registry:
    return Registry([
        rt("", "v1", "Pod", "pods", subresources=("status", "binding", "eviction", "log", "exec")),
        rt("", "v1", "Node", "nodes", namespaced=False, subresources=("status",)),
        rt("", "v1", "Namespace", "namespaces", namespaced=False, subresources=("status",)),
        rt("", "v1", "Service", "services", subresources=("status",)),
        rt("", "v1", "ConfigMap", "configmaps"),
        rt("apps", "v1", "Deployment", "deployments", subresources=("status", "scale")),
        rt("apps", "v1", "ReplicaSet", "replicasets", subresources=("status", "scale")),
        rt("coordination.k8s.io", "v1", "Lease", "leases"),
    ])


def refs_in(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                found.add(value.removeprefix("#/components/schemas/"))
            else:
                found |= refs_in(value)
    elif isinstance(node, list):
        for value in node:
            found |= refs_in(value)
    return found


def test_index_lists_each_group_version_with_a_stable_hash() -> None:
    index = openapi_v3_index(make_registry())
    assert set(index["paths"]) == {"api/v1", "apis/apps/v1", "apis/coordination.k8s.io/v1"}
    url = index["paths"]["apis/apps/v1"]["serverRelativeURL"]
    assert url.startswith("/openapi/v3/apis/apps/v1?hash=")
    assert openapi_v3_index(make_registry()) == index  # same content, same hash


def test_unknown_group_version_has_no_document() -> None:
    assert openapi_v3_document(make_registry(), "batch", "v1") is None


def test_every_reference_resolves() -> None:
    for group, version in (("", "v1"), ("apps", "v1"), ("coordination.k8s.io", "v1")):
        doc = openapi_v3_document(make_registry(), group, version)
        assert doc is not None and doc["openapi"].startswith("3.0")
        missing = refs_in(doc) - set(doc["components"]["schemas"])
        assert missing == set()


def test_kind_schemas_carry_gvk_and_patch_extensions() -> None:
    doc = openapi_v3_document(make_registry(), "", "v1")
    schemas = doc["components"]["schemas"]
    assert schemas["io.k8s.api.core.v1.Pod"]["x-kubernetes-group-version-kind"] == [
        {"group": "", "kind": "Pod", "version": "v1"}
    ]
    containers = schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    assert containers["x-kubernetes-patch-strategy"] == "merge"
    assert containers["x-kubernetes-list-type"] == "map"
    assert containers["x-kubernetes-list-map-keys"] == ["name"]
    ports = schemas["io.k8s.api.core.v1.Container"]["properties"]["ports"]
    assert ports["x-kubernetes-patch-merge-key"] == "containerPort"
    assert ports["x-kubernetes-list-map-keys"] == ["containerPort", "protocol"]
    volumes = schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["volumes"]
    assert volumes["x-kubernetes-patch-strategy"] == "merge,retainKeys"
    svc_ports = schemas["io.k8s.api.core.v1.ServiceSpec"]["properties"]["ports"]
    assert svc_ports["x-kubernetes-patch-merge-key"] == "port"
    selector = schemas["io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector"]
    assert selector["x-kubernetes-map-type"] == "atomic"
    port = schemas["io.k8s.api.core.v1.TCPSocketAction"]["properties"]["port"]
    assert port["allOf"][0]["$ref"].endswith("IntOrString")
    ios = schemas["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]
    assert ios["x-kubernetes-int-or-string"] is True and ios["format"] == "int-or-string"
    fields = schemas["io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1"]
    assert fields["x-kubernetes-preserve-unknown-fields"] is True
    owners = schemas["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]["properties"]["ownerReferences"]
    assert owners["x-kubernetes-patch-merge-key"] == "uid"
    assert schemas["io.k8s.apimachinery.pkg.apis.meta.v1.Time"]["format"] == "date-time"
    assert schemas["io.k8s.api.core.v1.PodList"]["x-kubernetes-group-version-kind"][0]["kind"] == "PodList"


def test_patch_operations_name_their_kind_and_take_field_validation() -> None:
    doc = openapi_v3_document(make_registry(), "apps", "v1")
    item = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]
    patch = item["patch"]
    assert patch["x-kubernetes-group-version-kind"] == {"group": "apps", "kind": "Deployment", "version": "v1"}
    assert patch["operationId"] == "patchAppsV1NamespacedDeployment"
    assert "fieldValidation" in {p["name"] for p in patch["parameters"]}
    assert "application/strategic-merge-patch+json" in patch["requestBody"]["content"]
    assert {"get", "put", "patch", "delete"} <= set(item)
    scale = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]
    assert scale["patch"]["x-kubernetes-group-version-kind"]["kind"] == "Scale"
    assert "io.k8s.api.autoscaling.v1.Scale" in doc["components"]["schemas"]
    assert "/apis/apps/v1/deployments" in doc["paths"]


def test_cluster_scoped_and_subresource_paths() -> None:
    doc = openapi_v3_document(make_registry(), "", "v1")
    assert doc["paths"]["/api/v1/nodes/{name}"]["patch"]["operationId"] == "patchCoreV1Node"
    assert "/api/v1/namespaces/{namespace}/nodes" not in doc["paths"]
    eviction = doc["paths"]["/api/v1/namespaces/{namespace}/pods/{name}/eviction"]["post"]
    assert eviction["x-kubernetes-group-version-kind"] == {"group": "policy", "kind": "Eviction", "version": "v1"}
    assert "/api/v1/namespaces/{namespace}/pods/{name}/binding" in doc["paths"]


def test_documents_are_built_once_per_registry() -> None:
    registry = make_registry()
    first = openapi_v3_document_bytes(registry, "apps", "v1")
    assert first is not None and openapi_v3_document_bytes(registry, "apps", "v1") is first
    assert json.loads(first) == openapi_v3_document(registry, "apps", "v1")


# -- the real kubectl against a tiny server that serves only what it needs ----

def _discovery(registry: Registry) -> dict[str, Any]:
    def resources(group: str, version: str) -> dict[str, Any]:
        gv = f"{group}/{version}" if group else version
        items = [{"name": t.plural, "singularName": t.singular, "namespaced": t.namespaced,
                  "kind": t.kind, "verbs": list(t.verbs)}
                 for t in registry.in_group_version(group, version)]
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": items}

    routes: dict[str, Any] = {
        "/version": {"major": "1", "minor": "32", "gitVersion": "v1.32.4", "platform": "linux/amd64"},
        "/api": {"kind": "APIVersions", "versions": ["v1"],
                 "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]},
        "/api/v1": resources("", "v1"),
    }
    groups = []
    for group, versions in registry.groups():
        if not group:
            continue
        gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        groups.append({"name": group, "versions": gvs, "preferredVersion": gvs[0]})
        for v in versions:
            routes[f"/apis/{group}/{v}"] = resources(group, v)
    routes["/apis"] = {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
    return routes


@pytest.fixture
async def fake_server() -> AsyncIterator[tuple[str, list[str]]]:
    registry = make_registry()
    routes = _discovery(registry)
    seen: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(f"{request.method} {request.path_qs}")
        path = request.path
        if path in routes:
            return web.json_response(routes[path])
        if path == "/openapi/v3":
            return web.json_response(openapi_v3_index(registry))
        if path.startswith("/openapi/v3/"):
            parts = path.removeprefix("/openapi/v3/").split("/")
            group, version = ("", parts[1]) if parts[0] == "api" else (parts[1], parts[2])
            raw = openapi_v3_document_bytes(registry, group, version)
            if raw is not None:
                return web.Response(body=raw, content_type="application/json")
        if request.method == "GET" and "/namespaces/" in path:
            name = path.rsplit("/", 1)[-1]
            return web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                      "reason": "NotFound", "code": 404,
                                      "message": f'"{name}" not found'}, status=404)
        if request.method == "POST":
            body = await request.json()
            return web.json_response(body, status=201)
        return web.json_response({"kind": "Status", "code": 404, "reason": "NotFound"}, status=404)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        await runner.cleanup()


async def _kubectl(server: str, cache: Path, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
    env = {**os.environ, "KUBECONFIG": "/dev/null", "HOME": str(cache)}
    proc = await asyncio.create_subprocess_exec(
        KUBECTL, f"--server={server}", f"--cache-dir={cache / 'cache'}", *args,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode() if stdin else None), 60)
    return proc.returncode or 0, out.decode(), err.decode()


needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")


@needs_kubectl
async def test_kubectl_explain_reads_our_documents(fake_server, tmp_path: Path) -> None:
    server, _ = fake_server
    code, out, err = await _kubectl(server, tmp_path, "explain", "pods.spec.containers")
    assert code == 0, err
    assert "FIELD: containers <[]Container>" in out
    assert "imagePullPolicy" in out and "livenessProbe" in out
    code, out, err = await _kubectl(server, tmp_path, "explain", "deployments.spec.strategy")
    assert code == 0, err
    assert "rollingUpdate" in out and "<DeploymentStrategy>" in out
    code, out, err = await _kubectl(server, tmp_path, "explain", "pods.spec.volumes.emptyDir.sizeLimit")
    assert code == 0, err
    assert "sizeLimit" in out


@needs_kubectl
async def test_kubectl_leaves_validation_to_the_server(fake_server, tmp_path: Path) -> None:
    server, seen = fake_server
    manifest = json.dumps({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "bogus": 1,
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "web", "image": "nginx"}]}}},
    })
    code, out, err = await _kubectl(server, tmp_path, "apply", "-f", "-", stdin=manifest)
    assert code == 0, err
    posts = [s for s in seen if s.startswith("POST ")]
    assert posts and "fieldValidation=Strict" in posts[0], seen
