"""A loopback stand-in for an API server that records what kubectl POSTs.

It serves just enough version and legacy discovery for ``kubectl create`` and
answers every POST with 201 and the decoded object, so tests can compare the
protobuf bodies kubectl really sends with what it prints for ``--dry-run``.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from corral.api.errors import ApiError
from corral.api.protobuf import PROTOBUF_CONTENT_TYPE, decode_k8s_protobuf

KUBECTL = "/usr/bin/kubectl"

# group version -> [(resource, kind, namespaced)]
_RESOURCES: dict[str, list[tuple[str, str, bool]]] = {
    "v1": [
        ("namespaces", "Namespace", False), ("configmaps", "ConfigMap", True),
        ("secrets", "Secret", True), ("services", "Service", True),
        ("serviceaccounts", "ServiceAccount", True), ("pods", "Pod", True),
        ("resourcequotas", "ResourceQuota", True), ("nodes", "Node", False),
    ],
    "apps/v1": [("deployments", "Deployment", True), ("replicasets", "ReplicaSet", True),
                ("daemonsets", "DaemonSet", True), ("statefulsets", "StatefulSet", True)],
    "batch/v1": [("jobs", "Job", True), ("cronjobs", "CronJob", True)],
    "policy/v1": [("poddisruptionbudgets", "PodDisruptionBudget", True)],
    "coordination.k8s.io/v1": [("leases", "Lease", True)],
    "rbac.authorization.k8s.io/v1": [
        ("roles", "Role", True), ("clusterroles", "ClusterRole", False),
        ("rolebindings", "RoleBinding", True), ("clusterrolebindings", "ClusterRoleBinding", False),
    ],
    "scheduling.k8s.io/v1": [("priorityclasses", "PriorityClass", False)],
    "networking.k8s.io/v1": [("ingresses", "Ingress", True)],
}


@dataclass
class Captured:
    content_type: str
    body: bytes
    decoded: dict[str, Any] | None
    error: str = ""


@dataclass
class CaptureServer:
    port: int = 0
    posts: list[Captured] = field(default_factory=list)
    _runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_get("/version", self._version)
        app.router.add_get("/api", self._api)
        app.router.add_get("/apis", self._apis)
        app.router.add_get("/api/{version}", self._resource_list)
        app.router.add_get("/apis/{group}/{version}", self._resource_list)
        app.router.add_post("/{tail:.*}", self._post)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @staticmethod
    def _json(body: Any, status: int = 200) -> web.Response:
        return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")

    async def _version(self, request: web.Request) -> web.Response:
        return self._json({"major": "1", "minor": "32", "gitVersion": "v1.32.4",
                           "platform": "linux/amd64"})

    async def _api(self, request: web.Request) -> web.Response:
        return self._json({"kind": "APIVersions", "versions": ["v1"],
                           "serverAddressByClientCIDRs": []})

    async def _apis(self, request: web.Request) -> web.Response:
        groups = []
        for gv in _RESOURCES:
            if gv == "v1":
                continue
            group, version = gv.split("/")
            entry = {"groupVersion": gv, "version": version}
            groups.append({"name": group, "versions": [entry], "preferredVersion": entry})
        return self._json({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})

    async def _resource_list(self, request: web.Request) -> web.Response:
        group = request.match_info.get("group")
        gv = f"{group}/{request.match_info['version']}" if group else request.match_info["version"]
        if gv not in _RESOURCES:
            return self._json({"kind": "Status", "status": "Failure", "code": 404,
                               "reason": "NotFound", "message": "not found"}, 404)
        resources = [
            {"name": name, "singularName": kind.lower(), "namespaced": namespaced, "kind": kind,
             "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]}
            for name, kind, namespaced in _RESOURCES[gv]
        ]
        return self._json({"kind": "APIResourceList", "groupVersion": gv, "resources": resources})

    async def _post(self, request: web.Request) -> web.Response:
        body = await request.read()
        content_type = request.headers.get("Content-Type", "")
        try:
            if content_type.startswith(PROTOBUF_CONTENT_TYPE):
                decoded = decode_k8s_protobuf(body)
            else:
                decoded = orjson.loads(body)
        except ApiError as exc:
            self.posts.append(Captured(content_type, body, None, exc.message))
            return self._json(exc.status(), exc.code)
        self.posts.append(Captured(content_type, body, decoded))
        return self._json(decoded, 201)


async def run_kubectl(server: CaptureServer, cache_dir: Path, *args: str) -> tuple[int, str, str]:
    """Run the real kubectl against ``server``; returns (exit code, stdout, stderr)."""
    env = {**os.environ, "KUBECONFIG": str(cache_dir / "no-kubeconfig"), "HOME": str(cache_dir)}
    proc = await asyncio.create_subprocess_exec(
        KUBECTL, "--server", f"http://127.0.0.1:{server.port}", "--cache-dir", str(cache_dir),
        "--namespace", "default", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()
