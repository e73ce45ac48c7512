"""ServiceAccount token signing: ES256 for new keys, RS256 for RSA keys a
data dir already has, no algorithm confusion, and the published JWKS."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from pathlib import Path

import orjson
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from corral.api.satoken import (
    DEFAULT_AUDIENCE,
    TokenClaims,
    TokenInvalid,
    TokenSigner,
    ensure_signing_key,
    key_id,
)

NOW = int(time.time())
CLAIMS = TokenClaims("ns", "bot", "uid-1", (DEFAULT_AUDIENCE,), NOW + 600, "web", "pod-uid")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _header(token: str) -> dict[str, object]:
    return orjson.loads(_unb64(token.split(".")[0]))


def _refused(signer: TokenSigner, token: str) -> bool:
    try:
        signer.verify(token, NOW)
    except TokenInvalid:
        return True
    return False


def _write_pem(path: Path, key: object, fmt: serialization.PrivateFormat) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, fmt,  # type: ignore[attr-defined]
                                       serialization.NoEncryption()))


def test_a_new_key_is_p256_and_signs_es256(tmp_path: Path) -> None:
    path = tmp_path / "pki" / "sa.key"
    key = ensure_signing_key(path)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    assert path.stat().st_mode & 0o777 == 0o600
    signer = TokenSigner(key)
    token = signer.issue(CLAIMS, NOW)
    assert _header(token) == {"alg": "ES256", "kid": key_id(key.public_key())}
    assert len(_unb64(token.split(".")[2])) == 64  # r || s, not DER
    assert signer.verify(token, NOW) == CLAIMS
    # The same file on the next start: same key, and the token still verifies.
    again = TokenSigner(ensure_signing_key(path))
    assert again.key_id == signer.key_id and again.verify(token, NOW) == CLAIMS


@pytest.mark.parametrize("fmt", [serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL])
def test_an_existing_rsa_key_keeps_signing_rs256(tmp_path: Path, fmt: serialization.PrivateFormat) -> None:
    path = tmp_path / "pki" / "sa.key"
    old = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_pem(path, old, fmt)
    # A token issued before the upgrade, signed as the old code did.
    head = _b64(orjson.dumps({"alg": "RS256", "kid": key_id(old.public_key())}))
    body = _b64(orjson.dumps({"aud": [DEFAULT_AUDIENCE], "exp": NOW + 600, "iat": NOW, "nbf": NOW,
                              "iss": "https://kubernetes.default.svc.cluster.local",
                              "sub": "system:serviceaccount:ns:bot",
                              "kubernetes.io": {"namespace": "ns", "serviceaccount": {"name": "bot", "uid": "u"}}}))
    from cryptography.hazmat.primitives.asymmetric import padding
    sig = old.sign(f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
    issued_before = f"{head}.{body}.{_b64(sig)}"

    key = ensure_signing_key(path)
    assert isinstance(key, rsa.RSAPrivateKey) and key.private_numbers() == old.private_numbers()
    signer = TokenSigner(key)
    assert signer.algorithm == "RS256"
    assert signer.verify(issued_before, NOW).username == "system:serviceaccount:ns:bot"
    token = signer.issue(CLAIMS, NOW)
    assert _header(token)["alg"] == "RS256" and signer.verify(token, NOW) == CLAIMS


def test_other_key_types_are_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "sa.key"
    _write_pem(path, ed25519.Ed25519PrivateKey.generate(), serialization.PrivateFormat.PKCS8)
    with pytest.raises(ValueError, match="sa.key.*RSA key or an ECDSA key"):
        ensure_signing_key(path)
    _write_pem(path, ec.generate_private_key(ec.SECP256K1()), serialization.PrivateFormat.PKCS8)
    with pytest.raises(ValueError, match="P-256"):
        ensure_signing_key(path)


@pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.SECP384R1(), ec.SECP521R1()])
def test_tampered_es_tokens_are_refused(curve: ec.EllipticCurve) -> None:
    signer = TokenSigner(ec.generate_private_key(curve))
    token = signer.issue(CLAIMS, NOW)
    assert signer.verify(token, NOW) == CLAIMS
    head, body, sig = token.split(".")
    raw = _unb64(sig)
    flipped = _b64(raw[:-1] + bytes([raw[-1] ^ 1]))
    other_claims = _b64(orjson.dumps(orjson.loads(_unb64(body)) | {"sub": "system:serviceaccount:ns:admin"}))
    r, s = int.from_bytes(raw[:len(raw) // 2], "big"), int.from_bytes(raw[len(raw) // 2:], "big")
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
    der = _b64(encode_dss_signature(r, s))  # valid signature, wrong JWS encoding
    for bad in (f"{head}.{body}.{flipped}", f"{head}.{other_claims}.{sig}", f"{head}.{body}.{sig[:-4]}",
                f"{head}.{body}.{der}", f"{head}.{body}.", f"{head}.{body}.{sig}=", f"{head}.{body}.{sig}+"):
        assert _refused(signer, bad), bad
    assert _refused(TokenSigner(ec.generate_private_key(curve)), token)  # another key


def test_the_token_cannot_choose_the_algorithm() -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_signer, rsa_signer = TokenSigner(ec_key), TokenSigner(rsa_key)
    body = ec_signer.issue(CLAIMS, NOW).split(".")[1]

    def forged(alg: str, kid: str, sign) -> str:  # noqa: ANN001
        head = _b64(orjson.dumps({"alg": alg, "kid": kid}))
        return f"{head}.{body}.{_b64(sign(f'{head}.{body}'.encode()))}"

    ec_kid, rsa_kid = key_id(ec_key.public_key()), key_id(rsa_key.public_key())
    ec_pub_pem = ec_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    from cryptography.hazmat.primitives.asymmetric import padding
    attempts = [
        forged("none", ec_kid, lambda _data: b""),
        forged("RS256", ec_kid, lambda data: rsa_key.sign(data, padding.PKCS1v15(), hashes.SHA256())),
        forged("HS256", ec_kid, lambda data: hmac.new(ec_pub_pem, data, hashlib.sha256).digest()),
        forged("ES384", ec_kid, lambda data: ec_signer.issue(CLAIMS, NOW).split(".")[2].encode()),
    ]
    for token in attempts:
        assert _refused(ec_signer, token), _header(token)
    # An ES256 header against the RSA key is refused as well, even with an
    # RS256 signature that would verify.
    rs = forged("ES256", rsa_kid, lambda data: rsa_key.sign(data, padding.PKCS1v15(), hashes.SHA256()))
    assert _refused(rsa_signer, rs)
    assert not _refused(rsa_signer, forged("RS256", rsa_kid,
                                           lambda data: rsa_key.sign(data, padding.PKCS1v15(), hashes.SHA256())))
    assert _refused(ec_signer, forged("ES256", "", lambda data: b"x" * 64))  # no kid


def test_jwks_publishes_the_ec_key_with_its_coordinates() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    old = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    signer = TokenSigner(key, extra_public=(old.public_key(),))
    keys = {k["kid"]: k for k in signer.jwks()["keys"]}
    jwk = keys[signer.key_id]
    assert jwk["kty"] == "EC" and jwk["crv"] == "P-256" and jwk["alg"] == "ES256" and jwk["use"] == "sig"
    assert len(_unb64(jwk["x"])) == len(_unb64(jwk["y"])) == 32
    # The published coordinates alone verify a token (what an OIDC relying party does).
    public = ec.EllipticCurvePublicNumbers(int.from_bytes(_unb64(jwk["x"]), "big"),
                                           int.from_bytes(_unb64(jwk["y"]), "big"), ec.SECP256R1()).public_key()
    assert key_id(public) == signer.key_id
    head, body, sig = signer.issue(CLAIMS, NOW).split(".")
    raw = _unb64(sig)
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
    public.verify(encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")),
                  f"{head}.{body}".encode(), ec.ECDSA(hashes.SHA256()))
    rsa_jwk = keys[key_id(old.public_key())]
    assert rsa_jwk["kty"] == "RSA" and rsa_jwk["alg"] == "RS256" and _unb64(rsa_jwk["e"]) == b"\x01\x00\x01"
    assert int.from_bytes(_unb64(rsa_jwk["n"]), "big") == old.public_key().public_numbers().n
    discovery = signer.openid_configuration()
    assert discovery["id_token_signing_alg_values_supported"] == ["ES256", "RS256"]
    assert discovery["jwks_uri"] == "https://kubernetes.default.svc.cluster.local/openid/v1/jwks"
    assert TokenSigner(key).openid_configuration()["id_token_signing_alg_values_supported"] == ["ES256"]


def test_rotation_to_ec_keeps_old_rsa_tokens_valid() -> None:
    old = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    issued_before = TokenSigner(old).issue(CLAIMS, NOW)
    rotated = TokenSigner(ec.generate_private_key(ec.SECP256R1()), extra_public=(old.public_key(),))
    assert rotated.verify(issued_before, NOW) == CLAIMS
    assert _header(rotated.issue(CLAIMS, NOW))["alg"] == "ES256"


def test_a_secret_binding_survives_the_round_trip() -> None:
    signer = TokenSigner(ec.generate_private_key(ec.SECP256R1()))
    claims = TokenClaims("ns", "bot", "uid-1", (DEFAULT_AUDIENCE,), NOW + 600, secret_name="s", secret_uid="s-uid")
    token = signer.issue(claims, NOW)
    assert signer.verify(token, NOW) == claims
    body = orjson.loads(_unb64(token.split(".")[1]))["kubernetes.io"]
    assert body["secret"] == {"name": "s", "uid": "s-uid"} and "pod" not in body
