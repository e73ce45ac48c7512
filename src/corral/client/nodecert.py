"""An agent's identity: exchange a join token for a node client certificate
(Kubernetes' kubelet TLS bootstrap), use it, and renew it before it expires.

The agent makes its own key (it never leaves the machine) and sends a
CertificateSigningRequest for ``CN=system:node:<name>, O=system:nodes``
with the join token; the server auto-approves it (api/csr.py) and the
signed certificate is kept with its key in one 0600 file,
``DATA_DIR/pki/node-client.pem``. One file, replaced with a rename, means a
crash can never leave a new key beside an old certificate. From then on the
agent authenticates with the certificate (so the node authorizer confines
it to its own objects), a restart reuses the file, and
:class:`CertificateRotator` renews it at a jittered 70-90 % of its lifetime,
as the kubelet's certificate manager does, with a request authenticated by
the current certificate.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import logging
import os
import random
import re
import ssl
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from corral.client import errors
from corral.client.api import ApiClient
from corral.client.backoff import Backoff
from corral.clock import Clock, RealClock

log = logging.getLogger(__name__)

NODE_SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"
CSR_PATH = "/apis/certificates.k8s.io/v1/certificatesigningrequests"
CREDENTIAL_FILE = "node-client.pem"
RENEW_WINDOW = (0.7, 0.9)
"""Renew at a random point in this fraction of the lifetime (kubelet's jitter),
so nodes that joined together do not all renew at once."""
RECHECK_SECONDS = 3600.0
"""Longest sleep between looks at the file: a clock jump or an operator
replacing the file is noticed within an hour."""
BOOTSTRAP_TOKEN_RE = re.compile(r"^[a-z0-9]{6}\.[a-z0-9]{16}$")


class BootstrapError(RuntimeError):
    """The server refused or did not sign the request, or there is nothing
    to authenticate with."""


def client_ssl_context(ca_file: Path, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca_file))
    if cert is not None and key is not None:
        ctx.load_cert_chain(str(cert), str(key))
    return ctx


def credential_path(data_dir: Path) -> Path:
    return Path(data_dir) / "pki" / CREDENTIAL_FILE


def is_bootstrap_token(token: str) -> bool:
    return bool(BOOTSTRAP_TOKEN_RE.match(token))


def new_key_and_csr(node_name: str, sans: list[x509.GeneralName] | None = None) -> tuple[bytes, bytes]:
    """(CSR, private key) PEMs for ``system:node:<name>`` in ``system:nodes``;
    ``sans`` for a serving certificate (agent/servingcert.py)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
                         x509.NameAttribute(NameOID.COMMON_NAME, f"system:node:{node_name}")])
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    csr = builder.sign(key, hashes.SHA256())
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return csr.public_bytes(serialization.Encoding.PEM), key_pem


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


async def submit_csr(client: ApiClient, csr_pem: bytes, *, signer: str, usages: list[str],
                     generate_name: str, unsigned: str) -> bytes:
    """POST a CertificateSigningRequest and return the certificate the server
    signed at once (node CSRs are approved on creation); ``unsigned`` says
    why one may have been stored but not signed."""
    body = {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {"generateName": generate_name},
            "spec": {"request": base64.b64encode(csr_pem).decode(), "signerName": signer, "usages": usages}}
    try:
        reply = await client.request("POST", CSR_PATH, json=body)
    except errors.ApiError as exc:
        raise BootstrapError(f"certificate request refused ({exc})") from exc
    cert_b64 = (reply.get("status") or {}).get("certificate")
    if not cert_b64:
        raise BootstrapError(f"the certificate request was stored but not signed ({unsigned})")
    return base64.b64decode(cert_b64)


async def _request_certificate(client: ApiClient, node_name: str, dest: Path) -> Path:
    """Ask for a certificate with whatever ``client`` authenticates with;
    write key and certificate to ``dest`` in one rename."""
    csr_pem, key_pem = new_key_and_csr(node_name)
    cert_pem = await submit_csr(client, csr_pem, signer=NODE_SIGNER, usages=["digital signature", "client auth"],
                                generate_name=f"node-csr-{node_name}-", unsigned="not auto-approved")
    write_credential(dest, key_pem, cert_pem)
    return dest


def write_credential(dest: Path, key_pem: bytes, cert_pem: bytes) -> None:
    """Key and certificate in one 0600 file, replaced in one rename."""
    x509.load_pem_x509_certificate(cert_pem)  # refuse to store garbage over a working credential
    _write_private(dest, key_pem + cert_pem)


async def bootstrap_node_certificate(server: str | Sequence[str], join_token: str, ca_file: Path,
                                     node_name: str, dest: Path) -> tuple[Path, Path]:
    """(certificate, key) paths, one combined file under ``dest``, obtained
    with the join token."""
    async with ApiClient(server, token=join_token, ca_file=str(ca_file), user_agent="corral-agent-bootstrap",
                         timeout=15.0) as client:
        path = await _request_certificate(client, node_name, Path(dest) / CREDENTIAL_FILE)
    return path, path


async def renew_node_certificate(server: str | Sequence[str], ca_file: Path, cert: Path, key: Path,
                                 node_name: str) -> tuple[Path, Path]:
    """A fresh key and certificate, asked for with the current certificate,
    written over ``cert`` (one combined file)."""
    async with ApiClient(server, ca_file=str(ca_file), cert_file=str(cert), key_file=str(key),
                         user_agent="corral-agent", timeout=15.0) as client:
        path = await _request_certificate(client, node_name, cert)
    return path, path


def read_certificate(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(Path(path).read_bytes())


def stored_certificate_problem(path: Path, node_name: str, ca_file: Path | None,
                               now: dt.datetime | None = None) -> str:
    """Why the stored credential cannot be used for ``node_name`` ("" if it can)."""
    if not path.exists():
        return f"no node certificate at {path}"
    try:
        cert = read_certificate(path)
        serialization.load_pem_private_key(path.read_bytes(), None)
    except ValueError as exc:
        return f"{path}: unreadable ({exc})"
    cn = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if cn != [f"system:node:{node_name}"]:
        return f"{path} is for {cn[0] if cn else 'no one'!s}, not system:node:{node_name}"
    if cert.not_valid_after_utc <= (now or dt.datetime.now(dt.UTC)):
        return f"{path} expired at {cert.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}"
    if ca_file is not None:
        try:
            cert.verify_directly_issued_by(read_certificate(ca_file))
        except (ValueError, TypeError, InvalidSignature):
            return f"{path} was not signed by the cluster CA in {ca_file}"
    return ""


def renewal_deadline(cert: x509.Certificate, rng: random.Random | None = None) -> dt.datetime:
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    low, high = RENEW_WINDOW
    return cert.not_valid_before_utc + lifetime * (rng or random).uniform(low, high)


def needs_renewal(cert: Path, now: dt.datetime | None = None) -> bool:
    """Past the earliest renewal point (70 % of the lifetime), or missing."""
    if not cert.exists():
        return True
    parsed = read_certificate(cert)
    lifetime = parsed.not_valid_after_utc - parsed.not_valid_before_utc
    return (now or dt.datetime.now(dt.UTC)) >= parsed.not_valid_before_utc + lifetime * RENEW_WINDOW[0]


class CertificateRotator:
    """Renews the node certificate behind ``client`` before it expires and
    makes the client present the new one; failures are retried with a
    bounded, jittered backoff (the old certificate keeps working meanwhile)."""

    def __init__(self, client: ApiClient, node_name: str, path: Path, *, clock: Clock | None = None,
                 rng: random.Random | None = None) -> None:
        self.client = client
        self.node_name = node_name
        self.path = path
        self.clock = clock or RealClock()
        self.rng = rng or random.Random()
        self.rotations = 0
        self._deadline: tuple[int, dt.datetime] | None = None  # (serial, when), drawn once per certificate

    def deadline(self) -> dt.datetime:
        cert = read_certificate(self.path)
        if self._deadline is None or self._deadline[0] != cert.serial_number:
            self._deadline = (cert.serial_number, renewal_deadline(cert, self.rng))
        return self._deadline[1]

    async def rotate(self) -> None:
        await _request_certificate(self.client, self.node_name, self.path)
        self.client.load_client_certificate(str(self.path), str(self.path))
        self.rotations += 1
        cert = read_certificate(self.path)
        log.info("node certificate for %s renewed; valid until %s", self.node_name,
                 f"{cert.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}")

    async def run(self) -> None:
        backoff = Backoff(1.0, 300.0, rng=self.rng)
        while True:
            try:
                wait = (self.deadline() - self.clock.now()).total_seconds()
            except (OSError, ValueError) as exc:
                log.error("node certificate %s unreadable (%s); retrying", self.path, exc)
                await self.clock.sleep(backoff.next())
                continue
            if wait > 0:
                await self.clock.sleep(min(wait, RECHECK_SECONDS))
                continue
            try:
                await self.rotate()
                backoff.reset()
            except (BootstrapError, errors.ApiError, OSError, ValueError) as exc:
                log.warning("renewing the node certificate failed (%s); the current one stays in use", exc)
                await self.clock.sleep(backoff.next())


async def _credential(servers: str | Sequence[str], token: str | None, ca_file: Path | None,
                      node_name: str, data_dir: Path) -> Path | None:
    """The usable certificate file, bootstrapping one if needed; None when
    ``token`` is an ordinary bearer token the agent should use as is."""
    path = credential_path(data_dir)
    problem = stored_certificate_problem(path, node_name, ca_file)
    if not problem:
        log.info("using the node certificate in %s", path)
        return path
    if token and is_bootstrap_token(token):
        if ca_file is None:
            raise BootstrapError("--ca-file: the cluster CA is needed to join with a bootstrap token "
                                 "(it is DATA_DIR/pki/ca.crt on the server)")
        log.info("%s; asking for one with the join token", problem)
        await bootstrap_node_certificate(servers, token, ca_file, node_name, path.parent)
        return path
    if token:
        log.warning("the token is not a bootstrap token (abcdef.0123456789abcdef): using it as a bearer "
                    "token; this agent has no node identity")
        return None
    raise BootstrapError(f"{problem}, and no --token to ask for one")


@contextlib.asynccontextmanager
async def node_api_client(servers: str | Sequence[str], token: str | None, *, ca_file: str | None,
                          insecure: bool, node_name: str, data_dir: Path, clock: Clock | None = None,
                          user_agent: str = "corral-agent") -> AsyncIterator[ApiClient]:
    """The agent's API client: authenticated by its node certificate
    (bootstrapped with the join token the first time, renewed in the
    background), or by ``token`` itself when that is not a join token."""
    ca = Path(ca_file) if ca_file else None
    path = await _credential(servers, token, ca, node_name, data_dir)
    if path is None:
        async with ApiClient(servers, token=token, ca_file=ca_file, insecure=insecure,
                             user_agent=user_agent) as client:
            yield client
        return
    async with ApiClient(servers, ca_file=ca_file, insecure=insecure, cert_file=str(path), key_file=str(path),
                         user_agent=user_agent) as client:
        rotator = CertificateRotator(client, node_name, path, clock=clock)
        task = asyncio.create_task(rotator.run(), name="node-certificate-rotation")
        task.add_done_callback(_report)
        try:
            yield client
        finally:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task



def _report(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("node certificate rotation stopped", exc_info=task.exception())
