"""ServiceAccount tokens: signed JWTs with Kubernetes' claims.

The signing key lives in the data directory (``pki/sa.key``). A new
cluster makes an ECDSA P-256 key and signs ES256 (Kubernetes accepts ECDSA
service-account keys): a signature costs ~0.04 ms of CPU against ~0.7 ms
for RS256 with a 2048-bit RSA key, and every pod start asks for a token. A
data directory made before keeps its RSA key and signs RS256 with it, so
the tokens it issued stay valid. The public half's SHA-256 is the ``kid``,
as Kubernetes computes it, so a token names the key that verifies it and
keys can be rotated by adding a new one; a token's ``alg`` must be the one
its key signs with (no RS256 header against an EC key, no ``none``).
Tokens are bound: to an audience, an expiry, the ServiceAccount's uid and
optionally a Pod's, and stop working when either object is gone.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

ISSUER = "https://kubernetes.default.svc.cluster.local"
DEFAULT_AUDIENCE = "https://kubernetes.default.svc.cluster.local"
MIN_EXPIRATION = 600
MAX_EXPIRATION = 48 * 3600
DEFAULT_EXPIRATION = 3600
SA_PREFIX = "system:serviceaccount:"
JWKS_PATH = "/openid/v1/jwks"
DISCOVERY_PATH = "/.well-known/openid-configuration"

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey

# JWS algorithm, hash and JWK curve name per EC curve (RFC 7518 3.4, 6.2.1.1).
_EC_ALGS: dict[str, tuple[str, type[hashes.HashAlgorithm], str]] = {
    "secp256r1": ("ES256", hashes.SHA256, "P-256"),
    "secp384r1": ("ES384", hashes.SHA384, "P-384"),
    "secp521r1": ("ES512", hashes.SHA512, "P-521"),
}


class TokenInvalid(Exception):
    """The token is not one of ours, is malformed, expired or for another audience."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    """Strict base64url without padding: one token has one spelling."""
    if "+" in text or "/" in text or "=" in text:
        raise TokenInvalid("malformed token")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (ValueError, TypeError) as exc:
        raise TokenInvalid("malformed token") from exc


def ensure_signing_key(path: Path) -> PrivateKey:
    """Load the signing key, making an ECDSA P-256 key on first start; an
    RSA key already there (a cluster made before ES256) is kept."""
    if not path.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        os.replace(tmp, path)
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if isinstance(loaded, rsa.RSAPrivateKey):
        return loaded
    if isinstance(loaded, ec.EllipticCurvePrivateKey) and loaded.curve.name in _EC_ALGS:
        return loaded
    raise ValueError(f"{path}: the service-account signing key must be an RSA key or an ECDSA key "
                     "on P-256, P-384 or P-521")


def algorithm(public: PublicKey) -> str:
    """The JWS ``alg`` a key signs with: RS256 for RSA, ES256/384/512 by curve."""
    if isinstance(public, rsa.RSAPublicKey):
        return "RS256"
    if isinstance(public, ec.EllipticCurvePublicKey) and public.curve.name in _EC_ALGS:
        return _EC_ALGS[public.curve.name][0]
    raise ValueError(f"unsupported service-account key type {type(public).__name__}")


def key_id(public: PublicKey) -> str:
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return _b64(hashlib.sha256(der).digest())


def _uint(value: int, size: int) -> str:
    return _b64(value.to_bytes(size, "big"))


def public_jwk(public: PublicKey) -> dict[str, str]:
    """One key of the JWKS document, as Kubernetes publishes it (``use`` sig,
    ``alg`` and ``kid`` set); EC coordinates are padded to the curve's size."""
    jwk = {"use": "sig", "kid": key_id(public), "alg": algorithm(public)}
    if isinstance(public, rsa.RSAPublicKey):
        nums = public.public_numbers()
        return jwk | {"kty": "RSA", "n": _uint(nums.n, (nums.n.bit_length() + 7) // 8),
                      "e": _uint(nums.e, (nums.e.bit_length() + 7) // 8)}
    points = public.public_numbers()
    size = (public.curve.key_size + 7) // 8
    return jwk | {"kty": "EC", "crv": _EC_ALGS[public.curve.name][2],
                  "x": _uint(points.x, size), "y": _uint(points.y, size)}


class _Verifier:
    """One public key with its algorithm, checking raw JWS signatures."""

    __slots__ = ("alg", "public", "_hash", "_ecdsa", "_size")

    def __init__(self, public: PublicKey) -> None:
        self.alg, self.public = algorithm(public), public
        if isinstance(public, ec.EllipticCurvePublicKey):
            self._hash: hashes.HashAlgorithm = _EC_ALGS[public.curve.name][1]()
            self._size = (public.curve.key_size + 7) // 8
        else:
            self._hash, self._size = hashes.SHA256(), 0
        self._ecdsa = ec.ECDSA(self._hash)

    def check(self, signature: bytes, data: bytes) -> None:
        try:
            if isinstance(self.public, rsa.RSAPublicKey):
                self.public.verify(signature, data, padding.PKCS1v15(), self._hash)
                return
            if len(signature) != 2 * self._size:  # JWS ECDSA is r || s, fixed width (RFC 7518 3.4)
                raise TokenInvalid("bad signature")
            r = int.from_bytes(signature[:self._size], "big")
            s = int.from_bytes(signature[self._size:], "big")
            self.public.verify(encode_dss_signature(r, s), data, self._ecdsa)
        except InvalidSignature:
            raise TokenInvalid("bad signature") from None


class _Signer:
    """One private key producing raw JWS signatures. What the key and its
    curve say is read once: asking the key for its curve, and building the
    padding and hash objects, on every token was a quarter of a signature."""

    __slots__ = ("_key", "_ecdsa", "_size")

    def __init__(self, key: PrivateKey) -> None:
        self._key = key
        if isinstance(key, rsa.RSAPrivateKey):
            self._ecdsa: ec.ECDSA | None = None
            self._size = 0
        else:
            self._ecdsa = ec.ECDSA(_EC_ALGS[key.curve.name][1]())
            self._size = (key.curve.key_size + 7) // 8

    def sign(self, data: bytes) -> bytes:
        key = self._key
        if isinstance(key, rsa.RSAPrivateKey):
            return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        assert self._ecdsa is not None
        r, s = decode_dss_signature(key.sign(data, self._ecdsa))
        return r.to_bytes(self._size, "big") + s.to_bytes(self._size, "big")  # JWS: r || s (RFC 7518 3.4)


@dataclass(frozen=True, slots=True)
class TokenClaims:
    namespace: str
    name: str
    uid: str
    audiences: tuple[str, ...]
    expires: int
    pod_name: str = ""
    pod_uid: str = ""
    secret_name: str = ""
    secret_uid: str = ""
    """A token bound to a Secret (``boundObjectRef`` kind Secret) names it, as Kubernetes' does."""

    @property
    def username(self) -> str:
        return f"{SA_PREFIX}{self.namespace}:{self.name}"


class TokenSigner:
    """Issues and verifies tokens with one signing key (and any older public keys)."""

    def __init__(self, key: PrivateKey, issuer: str = ISSUER, extra_public: tuple[PublicKey, ...] = ()) -> None:
        self._key = key
        self._signer = _Signer(key)
        self.issuer = issuer
        self._kid = key_id(key.public_key())
        self.algorithm = algorithm(key.public_key())
        self._verifiers = {key_id(k): _Verifier(k) for k in extra_public} | {self._kid: _Verifier(key.public_key())}
        self._header = _b64(orjson.dumps({"alg": self.algorithm, "kid": self._kid}))

    @property
    def key_id(self) -> str:
        return self._kid

    def issue(self, claims: TokenClaims, now: int) -> str:
        k8s: dict[str, Any] = {"namespace": claims.namespace,
                               "serviceaccount": {"name": claims.name, "uid": claims.uid}}
        if claims.pod_name:
            k8s["pod"] = {"name": claims.pod_name, "uid": claims.pod_uid}
        if claims.secret_name:
            k8s["secret"] = {"name": claims.secret_name, "uid": claims.secret_uid}
        payload = {
            "aud": list(claims.audiences), "exp": claims.expires, "iat": now, "nbf": now,
            "iss": self.issuer, "sub": claims.username, "jti": _b64(os.urandom(12)),
            "kubernetes.io": k8s,
        }
        signing_input = f"{self._header}.{_b64(orjson.dumps(payload))}"
        return f"{signing_input}.{_b64(self._signer.sign(signing_input.encode()))}"

    def verify(self, token: str, now: int, audiences: tuple[str, ...] = (DEFAULT_AUDIENCE,)) -> TokenClaims:
        parts = token.split(".")
        if len(parts) != 3:
            raise TokenInvalid("not a JWT")
        header = self._json(parts[0])
        verifier = self._verifiers.get(str(header.get("kid", "")))
        if verifier is None:
            raise TokenInvalid("signed by an unknown key")
        if header.get("alg") != verifier.alg:  # never let the token choose how it is checked
            raise TokenInvalid("signing algorithm does not match the key")
        verifier.check(_unb64(parts[2]), f"{parts[0]}.{parts[1]}".encode())
        return self._claims(self._json(parts[1]), now, audiences)

    def jwks(self) -> dict[str, Any]:
        """The public keys that verify this server's tokens (``/openid/v1/jwks``)."""
        return {"keys": [public_jwk(v.public) for v in self._verifiers.values()]}

    def openid_configuration(self, jwks_uri: str = "") -> dict[str, Any]:
        """OIDC discovery (``/.well-known/openid-configuration``), with the
        fields Kubernetes serves; the JWKS is under the issuer unless told."""
        algs = sorted({v.alg for v in self._verifiers.values()})
        return {"issuer": self.issuer, "jwks_uri": jwks_uri or self.issuer.rstrip("/") + JWKS_PATH,
                "response_types_supported": ["id_token"], "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": algs}

    def _claims(self, payload: dict[str, Any], now: int, audiences: tuple[str, ...]) -> TokenClaims:
        if payload.get("iss") != self.issuer:
            raise TokenInvalid("issued by someone else")
        aud = payload.get("aud")
        aud_list = tuple(aud) if isinstance(aud, list) else (aud,) if isinstance(aud, str) else ()
        if not set(aud_list) & set(audiences):
            raise TokenInvalid("token audiences do not include this server")
        exp, nbf = payload.get("exp"), payload.get("nbf", 0)
        if not isinstance(exp, int) or exp <= now:
            raise TokenInvalid("token has expired")
        if isinstance(nbf, int) and nbf > now + 60:
            raise TokenInvalid("token is not valid yet")
        k8s = payload.get("kubernetes.io")
        if not isinstance(k8s, dict) or not isinstance(k8s.get("serviceaccount"), dict):
            raise TokenInvalid("not a service-account token")
        sa, pod, secret = k8s["serviceaccount"], _object(k8s, "pod"), _object(k8s, "secret")
        return TokenClaims(str(k8s.get("namespace", "")), str(sa.get("name", "")), str(sa.get("uid", "")),
                           tuple(str(a) for a in aud_list), exp, str(pod.get("name", "")), str(pod.get("uid", "")),
                           str(secret.get("name", "")), str(secret.get("uid", "")))

    @staticmethod
    def _json(part: str) -> dict[str, Any]:
        try:
            value = orjson.loads(_unb64(part))
        except orjson.JSONDecodeError as exc:
            raise TokenInvalid("malformed token") from exc
        if not isinstance(value, dict):
            raise TokenInvalid("malformed token")
        return value


def _object(k8s: dict[str, Any], key: str) -> dict[str, Any]:
    value = k8s.get(key)
    return value if isinstance(value, dict) else {}
