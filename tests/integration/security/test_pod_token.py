"""The function agents call to project a ServiceAccount token into a pod."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp

from corral.api.security import SecurityOptions
from corral.client.podtoken import projected_files, request_pod_token
from corral.client.resources import PODS, SERVICEACCOUNTS
from corral.testing import running_server


async def _status(url: str, token: str, ca: Path) -> int:
    import ssl

    ctx = ssl.create_default_context(cafile=str(ca))
    async with aiohttp.ClientSession() as s, s.post(
        f"{url}/apis/authentication.k8s.io/v1/selfsubjectreviews",
        json={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
        headers={"Authorization": f"Bearer {token}"}, ssl=ctx) as r:
        return r.status


ACCOUNT = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "app", "namespace": "default"}}


async def _account_and_pod(client) -> dict:
    """ServiceAccount app and a pod web running as it, in default."""
    await client.create(SERVICEACCOUNTS, ACCOUNT)
    return await client.create(PODS, {"apiVersion": "v1", "kind": "Pod",
                                      "metadata": {"name": "web", "namespace": "default"},
                                      "spec": {"serviceAccountName": "app",
                                               "containers": [{"name": "c", "image": "x"}]}})


async def _until_refused(server, token: str, what: str) -> None:
    deadline = time.monotonic() + 15  # the authenticator re-checks bindings every few seconds
    while await _status(server.url, token, server.ca_file) != 401:
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.3)


async def test_pod_bound_token(tmp_path: Path) -> None:
    options = SecurityOptions(token_recheck_seconds=0.5)
    async with running_server(tmp_path, security=options) as server, server.client() as client:
        pod = await _account_and_pod(client)
        now = datetime.now(UTC)
        token = await request_pod_token(client, pod, now)
        assert timedelta(minutes=59) < token.expires - now < timedelta(minutes=62)
        assert not token.needs_refresh(now) and token.needs_refresh(now + timedelta(minutes=49))
        files = projected_files(token, server.ca_file.read_bytes(), "default")
        assert set(files) == {"token", "ca.crt", "namespace"} and files["namespace"] == b"default"
        assert await _status(server.url, token.token, server.ca_file) == 201
        await client.delete(PODS, "web", "default")
        await _until_refused(server, token.token, "the token outlived its pod")


async def test_a_secret_bound_token_dies_with_its_secret(tmp_path: Path) -> None:
    from corral.client.resources import SECRETS

    options = SecurityOptions(token_recheck_seconds=0.5)
    async with running_server(tmp_path, security=options) as server, server.client() as client:
        await client.create(SERVICEACCOUNTS, ACCOUNT)
        secret = await client.create(SECRETS, {"apiVersion": "v1", "kind": "Secret",
                                               "metadata": {"name": "holder", "namespace": "default"}})
        review = await client.request(
            "POST", "/api/v1/namespaces/default/serviceaccounts/app/token",
            json={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                  "spec": {"boundObjectRef": {"kind": "Secret", "apiVersion": "v1", "name": "holder",
                                              "uid": secret["metadata"]["uid"]}}})
        token = review["status"]["token"]
        assert await _status(server.url, token, server.ca_file) == 201
        await client.delete(SECRETS, "holder", "default")
        await _until_refused(server, token, "the token outlived its secret")


async def test_service_accounts_can_read_the_issuer_discovery_documents(tmp_path: Path) -> None:
    import base64
    import ssl

    import orjson

    async with running_server(tmp_path) as server, server.client() as client:
        pod = await _account_and_pod(client)
        token = (await request_pod_token(client, pod, datetime.now(UTC))).token
        header = orjson.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
        ctx = ssl.create_default_context(cafile=str(server.ca_file))
        async with aiohttp.ClientSession() as http:
            async def get(path: str, bearer: str | None) -> tuple[int, dict]:
                headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
                async with http.get(server.url + path, headers=headers, ssl=ctx) as r:
                    return r.status, (await r.json(content_type=None)) if r.status == 200 else {}

            status, config = await get("/.well-known/openid-configuration", token)
            assert status == 200
            assert config["id_token_signing_alg_values_supported"] == [header["alg"]] == ["ES256"]
            assert config["jwks_uri"].endswith("/openid/v1/jwks")
            status, keys = await get("/openid/v1/jwks", token)
            assert status == 200
            assert [k["kid"] for k in keys["keys"]] == [header["kid"]] and keys["keys"][0]["crv"] == "P-256"
            assert (await get("/openid/v1/jwks", None))[0] in (401, 403)
