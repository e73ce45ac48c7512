"""The agent endpoint's TLS: a serving certificate from the cluster CA, and
who may call (Kubernetes' kubelet serving certificate and the
apiserver-kubelet-client certificate).

The agent makes its own key and asks for ``CN=system:node:<name>,
O=system:nodes`` with the node's addresses and name as SANs through a
CertificateSigningRequest for ``kubernetes.io/kubelet-serving``; the server
signs it only when every SAN is one of the addresses the Node publishes
(api/kubelet_serving.py). Key and certificate live in one 0600 file,
``DATA_DIR/pki/node-serving.pem``, reused on restart while valid for the
current addresses, and renewed at a jittered 70-90 % of the lifetime like the
client certificate. The TLS context is loaded in place, so a renewal reaches
new connections without a restart.

Callers must present a client certificate from the cluster CA whose CN is the
API servers' (``kube-apiserver-kubelet-client``): the admin bearer token is
never accepted here, so a node that lies about its address collects nothing.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import random
import ssl
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from corral.client import errors
from corral.client.backoff import Backoff
from corral.client.nodecert import (
    RECHECK_SECONDS,
    BootstrapError,
    new_key_and_csr,
    renewal_deadline,
    submit_csr,
    write_credential,
)
from corral.clock import Clock, RealClock

log = logging.getLogger(__name__)

SERVING_SIGNER = "kubernetes.io/kubelet-serving"
SERVING_FILE = "node-serving.pem"
KUBELET_CLIENT_CN = "kube-apiserver-kubelet-client"
"""The identity API servers present to agents (api/kubelet_client.py)."""


def serving_path(data_dir: Path) -> Path:
    return Path(data_dir) / "pki" / SERVING_FILE


def subject_alt_names(addresses: list[str]) -> list[x509.GeneralName]:
    """IP SANs for addresses that parse as IPs, DNS SANs for the rest (in order, no duplicates)."""
    out: list[x509.GeneralName] = []
    for addr in dict.fromkeys(a for a in addresses if a):
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(addr)))
        except ValueError:
            out.append(x509.DNSName(addr))
    return out


def sans_of(cert_or_csr: x509.Certificate | x509.CertificateSigningRequest) -> set[str]:
    try:
        ext = cert_or_csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return {str(v) for v in ext.get_values_for_type(x509.IPAddress)} | set(ext.get_values_for_type(x509.DNSName))


def new_serving_csr(node_name: str, addresses: list[str]) -> tuple[bytes, bytes]:
    """(CSR, private key) PEMs for ``system:node:<name>`` serving ``addresses``."""
    return new_key_and_csr(node_name, subject_alt_names(addresses))


def sign_serving(ca_cert: x509.Certificate, ca_key: Any, csr: x509.CertificateSigningRequest,
                 validity: dt.timedelta) -> bytes:
    """A server-auth certificate for the CSR's subject, key and SANs (whoever
    calls this has checked they may have it)."""
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder().subject_name(csr.subject).issuer_name(ca_cert.subject)
        .public_key(csr.public_key())  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + validity)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=True, content_commitment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    sans = sans_of(csr)
    if sans:
        builder = builder.add_extension(
            csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value, critical=False)
    return builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def stored_serving_problem(path: Path, node_name: str, addresses: list[str], ca_pem: bytes,
                           now: dt.datetime | None = None) -> str:
    """Why the stored serving credential cannot be used ("" if it can)."""
    if not path.exists():
        return f"no serving certificate at {path}"
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
        serialization.load_pem_private_key(path.read_bytes(), None)
        ca = x509.load_pem_x509_certificate(ca_pem)
    except ValueError as exc:
        return f"{path}: unreadable ({exc})"
    cn = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if cn != [f"system:node:{node_name}"]:
        return f"{path} is not for system:node:{node_name}"
    missing = {a for a in addresses if a} - sans_of(cert)
    if missing:
        return f"{path} does not name {', '.join(sorted(missing))}"
    if cert.not_valid_after_utc <= (now or dt.datetime.now(dt.UTC)):
        return f"{path} expired"
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return f"{path} was not signed by the cluster CA"
    return ""


def agent_ssl_context(ca_pem: bytes) -> ssl.SSLContext:
    """Server side: clients may present a certificate from the cluster CA
    (verified in the handshake); who they are is checked per request, so a
    caller without one gets a 401 rather than a TLS failure."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.verify_mode = ssl.CERT_OPTIONAL
    if ca_pem:
        ctx.load_verify_locations(cadata=ca_pem.decode("ascii"))
    return ctx


def caller_identity(peercert: dict[str, Any] | None) -> str:
    """The CN of a verified client certificate ("" without one)."""
    for rdn in (peercert or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return ""


class ServingCertificates:
    """Keeps the agent's serving certificate loaded in ``context``: the stored
    one if usable, else a fresh one through a CSR, renewed before expiry."""

    def __init__(self, client: Any, node_name: str, data_dir: Path, addresses: list[str], *,
                 clock: Clock | None = None, rng: random.Random | None = None) -> None:
        self.client = client
        self.node_name = node_name
        self.path = serving_path(data_dir)
        self.addresses = [a for a in dict.fromkeys([*addresses, node_name]) if a]
        self.ca_pem: bytes = getattr(client, "ca_pem", b"") or b""
        if not self.ca_pem:
            log.warning("no cluster CA (--ca-file): API servers' client certificates cannot be verified, "
                        "so logs, exec and stats on this agent will be refused")
        self.context = agent_ssl_context(self.ca_pem)
        self.clock = clock or RealClock()
        self.rng = rng or random.Random()
        self.loaded = False
        self.rotations = 0
        self._deadline: tuple[int, dt.datetime] | None = None

    def load_stored(self) -> bool:
        problem = stored_serving_problem(self.path, self.node_name, self.addresses, self.ca_pem)
        if problem:
            log.info("%s", problem)
            return False
        self._load()
        return True

    def _load(self) -> None:
        self.context.load_cert_chain(str(self.path), str(self.path))
        self.loaded = True

    async def request(self) -> None:
        """A new key and certificate through a CSR, written and loaded."""
        csr_pem, key_pem = new_serving_csr(self.node_name, self.addresses)
        cert_pem = await submit_csr(
            self.client, csr_pem, signer=SERVING_SIGNER,
            usages=["digital signature", "key encipherment", "server auth"],
            generate_name=f"csr-serving-{self.node_name}-",
            unsigned="are its SANs all addresses the Node publishes?")
        write_credential(self.path, key_pem, cert_pem)
        self._load()
        self.rotations += 1
        log.info("serving certificate for %s issued for %s", self.node_name, ", ".join(self.addresses))

    async def ensure(self) -> bool:
        """Usable now (stored, or asked for once); failures are logged, and
        :meth:`run` keeps trying."""
        if self.loaded or self.load_stored():
            return True
        try:
            await self.request()
            return True
        except (BootstrapError, errors.ApiError, OSError, ValueError, ssl.SSLError) as exc:
            log.warning("no serving certificate yet: %s", exc)
            return False

    def _wait(self) -> float:
        if not self.loaded:
            return 0.0
        cert = x509.load_pem_x509_certificate(self.path.read_bytes())
        if self._deadline is None or self._deadline[0] != cert.serial_number:
            self._deadline = (cert.serial_number, renewal_deadline(cert, self.rng))
        return (self._deadline[1] - self.clock.now()).total_seconds()

    async def run(self) -> None:
        backoff = Backoff(1.0, 300.0, rng=self.rng)
        while True:
            try:
                wait = self._wait()
            except (OSError, ValueError) as exc:
                log.error("serving certificate %s unreadable (%s)", self.path, exc)
                wait = 0.0
            if wait > 0:
                await self.clock.sleep(min(wait, RECHECK_SECONDS))
                continue
            try:
                await self.request()
                backoff.reset()
            except (BootstrapError, errors.ApiError, OSError, ValueError, ssl.SSLError) as exc:
                log.warning("serving certificate for %s not renewed (%s); retrying", self.node_name, exc)
                await self.clock.sleep(backoff.next())
