"""Projected serviceAccountToken sources: a token bound to the pod, asked
for once and again after 80% of its life, kept when a refresh fails."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from corral.agent.volumes import VolumeError, VolumeManager
from corral.client.errors import ApiError
from corral.client.podtoken import PodToken

POD = {"metadata": {"name": "p", "namespace": "ns", "uid": "u1"},
       "spec": {"serviceAccountName": "robot", "volumes": [{"name": "kube-api-access-x", "projected": {
           "sources": [{"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                       {"downwardAPI": {"items": [{"path": "namespace",
                                                   "fieldRef": {"fieldPath": "metadata.namespace"}}]}}]}}]}}


class _Client:
    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, Any]]] = []
        self.fail = False

    async def post_subresource(self, res: Any, name: str, ns: str, sub: str, body: dict[str, Any]) -> dict:
        if self.fail:
            raise ApiError(503, "ServiceUnavailable", "the server is away")
        self.requests.append((name, ns, body))
        expires = datetime.now(UTC) + timedelta(seconds=body["spec"]["expirationSeconds"])
        return {"status": {"token": f"tok-{len(self.requests)}",
                           "expirationTimestamp": expires.strftime("%Y-%m-%dT%H:%M:%SZ")}}


async def test_token_is_bound_to_the_pod_and_written_with_the_other_files(tmp_path: Path):
    client = _Client()
    manager = VolumeManager(client, tmp_path)  # type: ignore[arg-type]
    vols = await manager.prepare(POD, host_ip="127.0.0.1", pod_ip="127.0.0.1")
    path = vols["kube-api-access-x"].path
    assert (path / "token").read_text() == "tok-1" and (path / "namespace").read_text() == "ns"
    name, ns, body = client.requests[0]
    assert (name, ns) == ("robot", "ns")
    assert body["spec"]["boundObjectRef"] == {"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "u1"}
    assert body["spec"]["expirationSeconds"] == 3607
    await manager.prepare(POD, host_ip="127.0.0.1", pod_ip="127.0.0.1")
    assert len(client.requests) == 1  # still fresh: not asked again


async def test_refreshed_after_80_percent_and_kept_if_the_refresh_fails(tmp_path: Path):
    client = _Client()
    manager = VolumeManager(client, tmp_path)  # type: ignore[arg-type]
    await manager.prepare(POD, host_ip="127.0.0.1", pod_ip="127.0.0.1")
    key = next(iter(manager._tokens))
    now = datetime.now(UTC)
    manager._tokens[key] = PodToken("old", now - timedelta(seconds=2900), now + timedelta(seconds=707))
    client.fail = True
    vols = await manager.prepare(POD, host_ip="127.0.0.1", pod_ip="127.0.0.1")
    assert (vols["kube-api-access-x"].path / "token").read_text() == "old"
    client.fail = False
    vols = await manager.prepare(POD, host_ip="127.0.0.1", pod_ip="127.0.0.1")
    assert (vols["kube-api-access-x"].path / "token").read_text() == "tok-2"
    manager.remove_pod("u1")
    assert not manager._tokens


async def test_no_token_at_all_is_a_mount_failure(tmp_path: Path):
    client = _Client()
    client.fail = True
    manager = VolumeManager(client, tmp_path)  # type: ignore[arg-type]
    with pytest.raises(VolumeError, match="failed to fetch token"):
        await manager.prepare(POD, host_ip="127.0.0.1", pod_ip="127.0.0.1")

