"""Bootstrap (join) tokens: the Secret `corral token create` writes and what
the authenticator makes of it."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

import pytest

from corral.api.auth import Authenticator, TokenAuthenticator
from corral.api.errors import Unauthorized
from corral.cli.token import DEFAULT_GROUP, parse_ttl, token_secret

TOKEN = "abcdef.0123456789abcdef"
NOW = dt.datetime.now(dt.UTC)


def _authenticator(secrets: dict[str, dict[str, Any]]) -> Authenticator:
    async def lookup(token_id: str) -> dict[str, Any] | None:
        return secrets.get(token_id)

    return Authenticator(TokenAuthenticator({}), bootstrap_secret=lookup)


async def test_a_token_is_its_secret_with_the_extra_groups() -> None:
    auth = _authenticator({"abcdef": token_secret(TOKEN, ttl=dt.timedelta(hours=1), now=NOW)})
    user = await auth.authenticate(f"Bearer {TOKEN}", "/api")
    assert user is not None and user.name == "system:bootstrap:abcdef"
    assert set(user.groups) == {"system:bootstrappers", DEFAULT_GROUP, "system:authenticated"}
    with pytest.raises(Unauthorized):
        await auth.authenticate("Bearer abcdef.0123456789abcdex", "/api")


@pytest.mark.parametrize("change", ["expired", "token-id", "usage", "groups", "type"])
async def test_what_makes_a_token_worthless(change: str) -> None:
    secret = token_secret(TOKEN, ttl=dt.timedelta(hours=1), now=NOW)
    data = secret["data"]

    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    if change == "expired":
        data["expiration"] = b64(f"{NOW - dt.timedelta(seconds=1):%Y-%m-%dT%H:%M:%SZ}")
    elif change == "token-id":
        data["token-id"] = b64("zzzzzz")
    elif change == "usage":
        data["usage-bootstrap-authentication"] = b64("false")
    elif change == "type":
        secret["type"] = "Opaque"
    else:  # a token can never claim groups outside system:bootstrappers:
        data["auth-extra-groups"] = b64("system:masters,system:bootstrappers:ok")
        user = await _authenticator({"abcdef": secret}).authenticate(f"Bearer {TOKEN}", "/api")
        assert user is not None and "system:masters" not in user.groups
        assert "system:bootstrappers:ok" in user.groups
        return
    with pytest.raises(Unauthorized):
        await _authenticator({"abcdef": secret}).authenticate(f"Bearer {TOKEN}", "/api")


def test_secret_format_and_ttl_parsing() -> None:
    secret = token_secret(TOKEN, ttl=dt.timedelta(minutes=90), now=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
                          description="rack 7")
    assert secret["metadata"] == {"name": "bootstrap-token-abcdef", "namespace": "kube-system"}
    assert secret["type"] == "bootstrap.kubernetes.io/token"
    decoded = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert decoded == {"token-id": "abcdef", "token-secret": "0123456789abcdef",
                       "usage-bootstrap-authentication": "true", "expiration": "2026-01-01T01:30:00Z",
                       "description": "rack 7", "auth-extra-groups": DEFAULT_GROUP}
    assert parse_ttl("90s") == dt.timedelta(seconds=90)
    assert parse_ttl("2h") == dt.timedelta(hours=2)
    assert parse_ttl("7d") == dt.timedelta(days=7)
    assert parse_ttl("0") is None
    for bad in ("soon", "-1h", "1w", ""):
        with pytest.raises(ValueError, match="ttl"):
            parse_ttl(bad)
    with pytest.raises(ValueError, match="token"):
        token_secret("ABCDEF.0123456789abcdef", ttl=None, now=NOW)
