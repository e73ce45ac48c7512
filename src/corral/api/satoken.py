"""ServiceAccount tokens: RS256-signed JWTs with Kubernetes' claims.

The signing key lives in the data directory (``pki/sa.key``); its public
half's SHA-256 is the ``kid``, as Kubernetes computes it, so a token names
the key that verifies it and keys can be rotated by adding a new one.
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
from cryptography.hazmat.primitives.asymmetric import padding, rsa

ISSUER = "https://kubernetes.default.svc.cluster.local"
DEFAULT_AUDIENCE = "https://kubernetes.default.svc.cluster.local"
MIN_EXPIRATION = 600
MAX_EXPIRATION = 48 * 3600
DEFAULT_EXPIRATION = 3600
SA_PREFIX = "system:serviceaccount:"


class TokenInvalid(Exception):
    """The token is not one of ours, is malformed, expired or for another audience."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise TokenInvalid("malformed token") from exc


def ensure_signing_key(path: Path) -> rsa.RSAPrivateKey:
    """Load the signing key, making a 2048-bit RSA key on first start."""
    if not path.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        os.replace(tmp, path)
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, rsa.RSAPrivateKey):
        raise ValueError(f"{path}: the service-account signing key must be an RSA key")
    return loaded


def key_id(public: rsa.RSAPublicKey) -> str:
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return _b64(hashlib.sha256(der).digest())


@dataclass(frozen=True, slots=True)
class TokenClaims:
    namespace: str
    name: str
    uid: str
    audiences: tuple[str, ...]
    expires: int
    pod_name: str = ""
    pod_uid: str = ""

    @property
    def username(self) -> str:
        return f"{SA_PREFIX}{self.namespace}:{self.name}"


class TokenSigner:
    """Issues and verifies tokens with one signing key (and any older public keys)."""

    def __init__(self, key: rsa.RSAPrivateKey, issuer: str = ISSUER,
                 extra_public: tuple[rsa.RSAPublicKey, ...] = ()) -> None:
        self._key = key
        self.issuer = issuer
        self._kid = key_id(key.public_key())
        self._public = {self._kid: key.public_key()} | {key_id(k): k for k in extra_public}
        self._header = _b64(orjson.dumps({"alg": "RS256", "kid": self._kid}))

    def issue(self, claims: TokenClaims, now: int) -> str:
        k8s: dict[str, Any] = {"namespace": claims.namespace,
                               "serviceaccount": {"name": claims.name, "uid": claims.uid}}
        if claims.pod_name:
            k8s["pod"] = {"name": claims.pod_name, "uid": claims.pod_uid}
        payload = {
            "aud": list(claims.audiences), "exp": claims.expires, "iat": now, "nbf": now,
            "iss": self.issuer, "sub": claims.username, "jti": _b64(os.urandom(12)),
            "kubernetes.io": k8s,
        }
        signing_input = f"{self._header}.{_b64(orjson.dumps(payload))}"
        sig = self._key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64(sig)}"

    def verify(self, token: str, now: int, audiences: tuple[str, ...] = (DEFAULT_AUDIENCE,)) -> TokenClaims:
        parts = token.split(".")
        if len(parts) != 3:
            raise TokenInvalid("not a JWT")
        header = self._json(parts[0])
        if header.get("alg") != "RS256":
            raise TokenInvalid("unsupported signing algorithm")
        public = self._public.get(str(header.get("kid", "")))
        if public is None:
            raise TokenInvalid("signed by an unknown key")
        try:
            public.verify(_unb64(parts[2]), f"{parts[0]}.{parts[1]}".encode(), padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise TokenInvalid("bad signature") from None
        return self._claims(self._json(parts[1]), now, audiences)

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
        sa, pod = k8s["serviceaccount"], k8s.get("pod") if isinstance(k8s.get("pod"), dict) else {}
        return TokenClaims(str(k8s.get("namespace", "")), str(sa.get("name", "")), str(sa.get("uid", "")),
                           tuple(str(a) for a in aud_list), exp, str(pod.get("name", "")), str(pod.get("uid", "")))

    @staticmethod
    def _json(part: str) -> dict[str, Any]:
        try:
            value = orjson.loads(_unb64(part))
        except orjson.JSONDecodeError as exc:
            raise TokenInvalid("malformed token") from exc
        if not isinstance(value, dict):
            raise TokenInvalid("malformed token")
        return value
