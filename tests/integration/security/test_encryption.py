"""Secrets are ciphertext on disk, readable through the API, and survive a
key rotation; their values never reach the audit log."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from click.testing import CliRunner

from corral.api.encryption import KEY_FILE, PREFIX, KeyRing
from corral.api.security import SecurityOptions
from corral.cli.encryption import encryption
from corral.client.errors import ApiError
from corral.testing import running_server

PLAIN = b"hunter2-very-secret-value"


def _disk_bytes(data: Path) -> bytes:
    return b"".join(p.read_bytes() for p in data.iterdir() if p.name.startswith("state.db"))


async def test_secrets_are_ciphertext_on_disk_and_survive_rotation(tmp_path: Path) -> None:
    data = tmp_path / "server"
    encoded = base64.b64encode(PLAIN).decode()
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"}, "data": {"password": encoded}}
    options = {"security": SecurityOptions(audit_level="Request")}
    async with running_server(tmp_path, **options) as server, server.client() as client:
        await client.request("POST", "/api/v1/namespaces/default/secrets", json=secret)
        await client.request("POST", "/api/v1/namespaces",
                             json={"metadata": {"name": "plain", "labels": {"note": "visible-config-value"}}})
        got = await client.request("GET", "/api/v1/namespaces/default/secrets/db")
        assert got["data"]["password"] == encoded
        listed = await client.request("GET", "/api/v1/namespaces/default/secrets")
        assert [s["data"]["password"] for s in listed["items"]] == [encoded]
        first_key = KeyRing.load(data / "pki" / KEY_FILE).primary
    disk = _disk_bytes(data)
    assert b"visible-config-value" in disk  # the check can see plaintext when there is some
    assert PLAIN not in disk and encoded.encode() not in disk
    assert PREFIX + first_key.encode() in disk
    audit = (data / "audit.log").read_bytes()
    assert b"visible-config-value" in audit and encoded.encode() not in audit

    rotated = CliRunner().invoke(encryption, ["rotate", "--data-dir", str(data)])
    assert rotated.exit_code == 0, rotated.output
    new_key = KeyRing.load(data / "pki" / KEY_FILE).primary
    assert new_key != first_key
    async with running_server(tmp_path) as server, server.client() as client:
        got = await client.request("GET", "/api/v1/namespaces/default/secrets/db")
        assert got["data"]["password"] == encoded
        kv = await server.ctx.store.inner.get("/registry/core/secrets/default/db")
        assert kv.value.startswith(PREFIX + new_key.encode() + b":")
    assert PLAIN not in _disk_bytes(data)
    pruned = CliRunner().invoke(encryption, ["rotate", "--prune", "--data-dir", str(data)])
    assert pruned.exit_code == 0 and first_key in pruned.output
    async with running_server(tmp_path) as server, server.client() as client:  # re-encrypted: old key not needed
        got = await client.request("GET", "/api/v1/namespaces/default/secrets/db")
        assert got["data"]["password"] == encoded


async def test_tampered_ciphertext_is_refused_not_served(tmp_path: Path) -> None:
    async with running_server(tmp_path) as server, server.client() as client:
        await client.request("POST", "/api/v1/namespaces/default/secrets",
                             json={"metadata": {"name": "a"}, "stringData": {"k": "v"}, "data": {"x": "eA=="}})
        inner = server.ctx.store.inner
        kv = await inner.get("/registry/core/secrets/default/a")
        # Move a's ciphertext onto another key: it must not open there.
        await inner.create("/registry/core/secrets/default/b", kv.value)
        with pytest.raises(ApiError) as err:  # an integrity failure: a 500 Status, never the data
            await client.request("GET", "/api/v1/namespaces/default/secrets/b")
        assert err.value.status == 500
