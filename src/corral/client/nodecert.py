"""An agent's identity: exchange a join token for a node client certificate
(Kubernetes' kubelet TLS bootstrap), and renew it before it expires.

The agent makes its own key (it never leaves the machine), sends a
CertificateSigningRequest for ``CN=system:node:<name>, O=system:nodes`` with
the join token, and keeps the signed certificate beside the key. Renewal
sends a new request authenticated by the current certificate.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import ssl
from pathlib import Path

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

NODE_SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"
CSR_PATH = "/apis/certificates.k8s.io/v1/certificatesigningrequests"
RENEW_AT_FRACTION = 0.3
"""Renew when less than this fraction of the certificate's lifetime is left."""


class BootstrapError(RuntimeError):
    """The server refused or did not sign the request."""


def client_ssl_context(ca_file: Path, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca_file))
    if cert is not None and key is not None:
        ctx.load_cert_chain(str(cert), str(key))
    return ctx


def _csr(node_name: str) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"system:node:{node_name}"),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes")])
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return csr.public_bytes(serialization.Encoding.PEM), key_pem


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


async def _request_certificate(server: str, ctx: ssl.SSLContext, headers: dict[str, str], node_name: str,
                               dest: Path) -> tuple[Path, Path]:
    csr_pem, key_pem = _csr(node_name)
    body = {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {"generateName": f"node-csr-{node_name}-"},
            "spec": {"request": base64.b64encode(csr_pem).decode(), "signerName": NODE_SIGNER,
                     "usages": ["digital signature", "client auth"]}}
    async with aiohttp.ClientSession() as session, \
            session.post(server.rstrip("/") + CSR_PATH, json=body, headers=headers, ssl=ctx) as resp:
        reply = await resp.json(content_type=None)
        if resp.status != 201:
            raise BootstrapError(f"certificate request refused ({resp.status}): {reply.get('message')}")
    cert_b64 = (reply.get("status") or {}).get("certificate")
    if not cert_b64:
        raise BootstrapError("the certificate request was stored but not signed (not auto-approved)")
    cert_path, key_path = dest / "node.crt", dest / "node.key"
    _write_private(key_path, key_pem)
    _write_private(cert_path, base64.b64decode(cert_b64))
    return cert_path, key_path


async def bootstrap_node_certificate(server: str, join_token: str, ca_file: Path, node_name: str,
                                     dest: Path) -> tuple[Path, Path]:
    """(certificate, key) paths under ``dest``, obtained with the join token."""
    return await _request_certificate(server, client_ssl_context(ca_file),
                                      {"Authorization": f"Bearer {join_token}"}, node_name, dest)


async def renew_node_certificate(server: str, ca_file: Path, cert: Path, key: Path, node_name: str) -> tuple[Path, Path]:
    """A fresh certificate and key, asked for with the current certificate."""
    return await _request_certificate(server, client_ssl_context(ca_file, cert, key), {}, node_name, cert.parent)


def needs_renewal(cert: Path, now: dt.datetime | None = None) -> bool:
    if not cert.exists():
        return True
    parsed = x509.load_pem_x509_certificate(cert.read_bytes())
    now = now or dt.datetime.now(dt.UTC)
    lifetime = parsed.not_valid_after_utc - parsed.not_valid_before_utc
    return parsed.not_valid_after_utc - now < lifetime * RENEW_AT_FRACTION
