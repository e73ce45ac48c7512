"""Client certificates signed by the cluster CA, and the bootstrap tokens
that let a new agent ask for one (Kubernetes' kubelet TLS bootstrap).

A node's certificate says ``CN=system:node:<name>, O=system:nodes``; the
authenticator reads that as the node's identity and the node authorizer
confines it to its own Node, Lease, pods and their Secrets. A join token is
``<6 chars>.<16 chars>``, stored as a ``bootstrap.kubernetes.io/token``
Secret in kube-system as Kubernetes stores them, and only lets its bearer
create a CertificateSigningRequest.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
import secrets
import string
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NODE_SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"
NODE_GROUP = "system:nodes"
NODE_PREFIX = "system:node:"
BOOTSTRAP_GROUP = "system:bootstrappers"
CLIENT_VALIDITY = dt.timedelta(days=365)
TOKEN_RE = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
_ALPHABET = string.ascii_lowercase + string.digits


class CertificateError(ValueError):
    """A request that cannot be signed (malformed, or asks for the wrong identity)."""


def load_ca(pki: Path) -> tuple[x509.Certificate, Any]:
    cert = x509.load_pem_x509_certificate((pki / "ca.crt").read_bytes())
    key = serialization.load_pem_private_key((pki / "ca.key").read_bytes(), None)
    return cert, key


def subject_of(csr: x509.CertificateSigningRequest) -> tuple[str, list[str]]:
    cn = [a.value for a in csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    orgs = [str(a.value) for a in csr.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    return (str(cn[0]) if cn else ""), orgs


def parse_csr(pem: bytes) -> x509.CertificateSigningRequest:
    try:
        csr = x509.load_pem_x509_csr(pem)
    except ValueError as exc:
        raise CertificateError(f"spec.request: not a PEM certificate request: {exc}") from None
    if not csr.is_signature_valid:
        raise CertificateError("spec.request: the request's signature does not verify")
    return csr


def sign_client_csr(pki: Path, csr: x509.CertificateSigningRequest, validity: dt.timedelta = CLIENT_VALIDITY) -> bytes:
    """A client certificate for the CSR's subject and public key, from the CA."""
    ca_cert, ca_key = load_ca(pki)
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(csr.subject)
        .issuer_name(ca_cert.subject)
        .public_key(csr.public_key())  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + validity)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def describe_certificate(path: Path) -> dict[str, str]:
    """What ``corral certs`` prints for one certificate file."""
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    left = cert.not_valid_after_utc - dt.datetime.now(dt.UTC)
    return {
        "file": path.name, "subject": cert.subject.rfc4514_string(), "issuer": cert.issuer.rfc4514_string(),
        "expires": cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"), "days_left": str(left.days),
    }


# -- bootstrap (join) tokens ---------------------------------------------------

def new_bootstrap_token() -> str:
    pick = secrets.choice
    return "".join(pick(_ALPHABET) for _ in range(6)) + "." + "".join(pick(_ALPHABET) for _ in range(16))


def bootstrap_token_secret(token: str, ttl: dt.timedelta, now: dt.datetime, description: str = "") -> dict[str, Any]:
    """The kube-system Secret Kubernetes keeps a bootstrap token in."""
    match = TOKEN_RE.match(token)
    if match is None:
        raise ValueError("a bootstrap token looks like abcdef.0123456789abcdef")
    token_id, token_secret = match.groups()

    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    data = {"token-id": b64(token_id), "token-secret": b64(token_secret),
            "usage-bootstrap-authentication": b64("true"),
            "expiration": b64((now + ttl).strftime("%Y-%m-%dT%H:%M:%SZ"))}
    if description:
        data["description"] = b64(description)
    return {"apiVersion": "v1", "kind": "Secret", "type": "bootstrap.kubernetes.io/token",
            "metadata": {"name": f"bootstrap-token-{token_id}", "namespace": "kube-system"}, "data": data}


def check_bootstrap_secret(secret: dict[str, Any], token_secret: str, now: dt.datetime) -> bool:
    """Whether ``secret`` (the stored Secret) admits this token secret now."""
    import hmac

    if secret.get("type") != "bootstrap.kubernetes.io/token":
        return False
    data = secret.get("data") or {}
    try:
        stored = base64.b64decode(data.get("token-secret", "")).decode()
        usage = base64.b64decode(data.get("usage-bootstrap-authentication", "")).decode()
        expiration = base64.b64decode(data.get("expiration", "")).decode()
    except (ValueError, UnicodeDecodeError):
        return False
    if usage != "true" or not hmac.compare_digest(stored, token_secret):
        return False
    if expiration:
        try:
            if dt.datetime.strptime(expiration, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC) <= now:
                return False
        except ValueError:
            return False
    return not (secret.get("metadata") or {}).get("deletionTimestamp")


def accept_client_certs(ctx: Any, ca_file: Path) -> Any:
    """Let clients present a certificate from our CA (optional: tokens still work)."""
    import ssl

    ctx.verify_mode = ssl.CERT_OPTIONAL
    ctx.load_verify_locations(cafile=str(ca_file))
    return ctx
