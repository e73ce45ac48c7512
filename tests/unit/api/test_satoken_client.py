"""A pod's ServiceAccount token authenticates the `kubernetes` Python client,
whether the server's data dir made a new ES256 key or kept an RSA key."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from corral.client.podtoken import request_pod_token
from corral.client.resources import PODS, SERVICEACCOUNTS
from corral.testing import running_server


def _whoami(url: str, token: str, ca: Path) -> tuple[str, int]:
    """The client's own view: SelfSubjectReview's username, or the HTTP status it got."""
    from kubernetes import client

    config = client.Configuration()
    config.host, config.ssl_ca_cert = url, str(ca)
    config.api_key = {"authorization": token}
    config.api_key_prefix = {"authorization": "Bearer"}
    with client.ApiClient(config) as api:
        try:
            review = client.AuthenticationV1Api(api).create_self_subject_review(
                client.V1SelfSubjectReview(api_version="authentication.k8s.io/v1", kind="SelfSubjectReview"))
        except client.exceptions.ApiException as exc:
            return "", exc.status
        return review.status.user_info.username, 201


@pytest.mark.parametrize("existing", ["", "rsa"])
async def test_kubernetes_client_authenticates_with_a_pod_token(tmp_path: Path, existing: str) -> None:
    if existing == "rsa":  # a data dir from before ES256
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        path = tmp_path / "server" / "pki" / "sa.key"
        path.parent.mkdir(parents=True)
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    async with running_server(tmp_path) as server, server.client() as client:
        await client.create(SERVICEACCOUNTS, {"apiVersion": "v1", "kind": "ServiceAccount",
                                              "metadata": {"name": "app", "namespace": "default"}})
        pod = await client.create(PODS, {"apiVersion": "v1", "kind": "Pod",
                                         "metadata": {"name": "web", "namespace": "default"},
                                         "spec": {"serviceAccountName": "app",
                                                  "containers": [{"name": "c", "image": "x"}]}})
        token = await request_pod_token(client, pod, datetime.now(UTC))
        head = token.token.split(".")[0]
        alg = orjson.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))["alg"]
        assert alg == ("RS256" if existing == "rsa" else "ES256")
        user, status = await asyncio.to_thread(_whoami, server.url, token.token, server.ca_file)
        assert (user, status) == ("system:serviceaccount:default:app", 201)
        forged = token.token[:-6] + ("AAAAAA" if not token.token.endswith("AAAAAA") else "BBBBBB")
        assert await asyncio.to_thread(_whoami, server.url, forged, server.ca_file) == ("", 401)


async def test_a_token_bound_to_a_secret_names_it(tmp_path: Path) -> None:
    async with running_server(tmp_path) as server, server.client() as client:
        from corral.client.resources import SECRETS

        await client.create(SERVICEACCOUNTS, {"apiVersion": "v1", "kind": "ServiceAccount",
                                              "metadata": {"name": "app", "namespace": "default"}})
        secret = await client.create(SECRETS, {"apiVersion": "v1", "kind": "Secret",
                                               "metadata": {"name": "s", "namespace": "default"}})
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                "spec": {"boundObjectRef": {"kind": "Secret", "apiVersion": "v1", "name": "s"}}}
        reply = await client.post_subresource(SERVICEACCOUNTS, "app", "default", "token", body)
        payload = reply["status"]["token"].split(".")[1]
        claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["kubernetes.io"]
        assert claims["secret"] == {"name": "s", "uid": secret["metadata"]["uid"]} and "pod" not in claims


async def test_discovery_handlers_publish_the_signing_key() -> None:
    """The handlers as a server mounts them (JWKS_PATH, DISCOVERY_PATH)."""
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer
    from cryptography.hazmat.primitives.asymmetric import ec

    from corral.api.authz.keys import SIGNER_KEY
    from corral.api.satoken import DISCOVERY_PATH, JWKS_PATH, TokenSigner
    from corral.api.tokenrequest import jwks, openid_configuration

    signer = TokenSigner(ec.generate_private_key(ec.SECP256R1()))
    app = web.Application()
    app[SIGNER_KEY] = signer
    app.router.add_get(JWKS_PATH, jwks)
    app.router.add_get(DISCOVERY_PATH, openid_configuration)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        found = await client.get(DISCOVERY_PATH)
        assert found.status == 200 and found.headers["Cache-Control"] == "public, max-age=3600"
        discovery = await found.json()
        assert discovery["id_token_signing_alg_values_supported"] == ["ES256"]
        assert discovery["jwks_uri"].endswith(JWKS_PATH)
        keys = await client.get(JWKS_PATH)
        assert keys.content_type == "application/jwk-set+json"
        (key,) = orjson.loads(await keys.read())["keys"]
        assert key["kid"] == signer.key_id and key["kty"] == "EC" and key["crv"] == "P-256"
        assert {"x", "y"} <= set(key) and "d" not in key  # never the private half
