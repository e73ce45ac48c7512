"""Hostile text into the parsers the server runs on client input: each
either answers or raises its one documented error, never anything else."""

from __future__ import annotations

import time

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corral.api.auth import User
from corral.api.authz.attributes import request_attributes
from corral.api.errors import ApiError, BadRequest
from corral.api.patch import apply_patch
from corral.api.satoken import TokenInvalid, TokenSigner
from corral.api.selectors import parse_field_selector, parse_label_selector
from corral.resources.quantity import QuantityError, parse_quantity
from corral.resources.schemas import kind_schema

SELECTOR_CHARS = st.text(alphabet=st.sampled_from(list("ab=!,() in notin\\.-_/x9 \t")) | st.characters(), max_size=60)
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
USER = User("u", "", ("system:authenticated",))


@FAST
@given(SELECTOR_CHARS)
def test_label_selectors_parse_or_400(text: str) -> None:
    try:
        reqs = parse_label_selector(text)
    except BadRequest:
        return
    assert all(r.key for r in reqs)


@FAST
@given(SELECTOR_CHARS)
def test_field_selectors_parse_or_400(text: str) -> None:
    try:
        parse_field_selector(text, {"metadata.name", "spec.nodeName"})
    except BadRequest:
        pass


@FAST
@given(st.text(alphabet=st.sampled_from(list("0123456789.+-eEkKMGTPiumn ")), max_size=24) | st.text(max_size=24))
def test_quantities_parse_or_refuse(text: str) -> None:
    try:
        parse_quantity(text)
    except QuantityError:
        pass


PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json",
               "application/strategic-merge-patch+json", "application/apply-patch+yaml")
JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@FAST
@given(st.sampled_from(PATCH_TYPES), st.binary(max_size=200) | JSONISH.map(orjson.dumps))
def test_patches_apply_or_refuse(content_type: str, body: bytes) -> None:
    current = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "d"},
               "data": {"a": "b"}}
    try:
        out = apply_patch(current, body, content_type, kind_schema("", "v1", "ConfigMap"),
                          field_manager="m", force=False, now="2024-01-01T00:00:00Z")
    except ApiError as exc:
        assert 400 <= exc.code < 500
        return
    assert isinstance(out, dict)


@FAST
@given(st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE"]), st.text(max_size=80),
       st.dictionaries(st.sampled_from(["watch", "fieldSelector"]), st.text(max_size=20), max_size=2))
def test_request_attributes_never_fail(method: str, path: str, query: dict[str, str]) -> None:
    attrs = request_attributes(USER, method, "/" + path, query)
    assert attrs.verb


def _signer() -> TokenSigner:
    from cryptography.hazmat.primitives.asymmetric import rsa

    return TokenSigner(rsa.generate_private_key(public_exponent=65537, key_size=2048))


SIGNER = _signer()


@FAST
@given(st.text(max_size=200) | st.lists(st.text(alphabet="abcXYZ_-=0123456789", max_size=40), min_size=3, max_size=3).map(".".join))
def test_tokens_verify_or_refuse(token: str) -> None:
    try:
        SIGNER.verify(token, int(time.time()))
    except TokenInvalid:
        return
    raise AssertionError("a made-up token verified")


def test_issued_tokens_verify_and_tampering_is_caught() -> None:
    from corral.api.satoken import DEFAULT_AUDIENCE, TokenClaims

    now = int(time.time())
    claims = TokenClaims("ns", "bot", "uid-1", (DEFAULT_AUDIENCE,), now + 600)
    token = SIGNER.issue(claims, now)
    assert SIGNER.verify(token, now) == claims
    head, body, sig = token.split(".")
    for bad in (f"{head}.{body}x.{sig}", f"{head}.{body}.{sig[:-2]}AA", token + "."):
        try:
            SIGNER.verify(bad, now)
        except TokenInvalid:
            continue
        raise AssertionError(f"tampered token verified: {bad[-20:]}")
    try:
        SIGNER.verify(token, now + 601)
        raise AssertionError("expired token verified")
    except TokenInvalid:
        pass
    try:
        SIGNER.verify(token, now, ("https://elsewhere",))
        raise AssertionError("token for another audience verified")
    except TokenInvalid:
        pass
    other = _signer()
    try:
        other.verify(token, now)
        raise AssertionError("token signed by another key verified")
    except TokenInvalid:
        pass
