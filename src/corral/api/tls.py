"""The cluster CA and the serving certificate.

kubectl sends a bearer token only over HTTPS, so the server always serves
TLS. On first start it makes a CA in the data directory and a serving
certificate signed by it, with IP SANs for loopback; later starts reuse them
and renew the serving certificate when it is near expiry.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_VALIDITY = dt.timedelta(days=3650)
SERVING_VALIDITY = dt.timedelta(days=365)
RENEW_BEFORE = dt.timedelta(days=30)


@dataclass(frozen=True)
class ServingFiles:
    ca_cert: Path
    ca_key: Path
    cert: Path
    key: Path


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _make_ca(files: ServingFiles) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "corral-ca")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    _write_private(files.ca_key, _key_pem(key))
    _write_private(files.ca_cert, cert.public_bytes(serialization.Encoding.PEM))


def _needs_serving_cert(files: ServingFiles, hosts: list[str]) -> bool:
    if not files.cert.exists() or not files.key.exists():
        return True
    cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
    if cert.not_valid_after_utc - dt.datetime.now(dt.UTC) < RENEW_BEFORE:
        return True
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return True
    have = {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    have |= set(san.get_values_for_type(x509.DNSName))
    return not set(hosts) <= have


def _make_serving_cert(files: ServingFiles, hosts: list[str]) -> None:
    ca_key = serialization.load_pem_private_key(files.ca_key.read_bytes(), None)
    ca_cert = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "corral-apiserver")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + SERVING_VALIDITY)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    _write_private(files.key, _key_pem(key))
    _write_private(files.cert, cert.public_bytes(serialization.Encoding.PEM))


def ensure_serving_files(data_dir: Path, hosts: list[str]) -> ServingFiles:
    """Create (or reuse, or renew) the CA and serving certificate under data_dir/pki."""
    pki = data_dir / "pki"
    pki.mkdir(parents=True, exist_ok=True, mode=0o700)
    files = ServingFiles(pki / "ca.crt", pki / "ca.key", pki / "apiserver.crt", pki / "apiserver.key")
    if not files.ca_cert.exists() or not files.ca_key.exists():
        _make_ca(files)
    if _needs_serving_cert(files, hosts):
        _make_serving_cert(files, hosts)
    return files


def server_ssl_context(files: ServingFiles) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(files.cert), str(files.key))
    return ctx


def serving_hosts(files: ServingFiles) -> list[str]:
    """The names and addresses the current serving certificate is valid for."""
    cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] + list(san.get_values_for_type(x509.DNSName))


def renew_serving_cert(data_dir: Path, extra_hosts: Sequence[str] = ()) -> ServingFiles:
    """A fresh serving certificate from the cluster CA, for the names the old
    one had plus ``extra_hosts``; a running server picks it up by itself
    (:class:`ServingCertificateReloader`)."""
    files = ensure_serving_files(data_dir, [])
    _make_serving_cert(files, sorted(set(serving_hosts(files)) | set(extra_hosts)))
    return files


class ServingCertificateReloader:
    """Keeps a live server's TLS context on the current serving certificate.

    ``corral certs renew`` (or an operator) replaces the files; within
    ``interval`` seconds they are loaded into the context the listening
    socket uses, so new connections get the new certificate and open ones
    keep theirs: no restart. A certificate that comes within
    ``RENEW_BEFORE`` of expiry while the server runs is renewed here too.
    A half-written pair (new key, old certificate) fails to load and is
    retried at the next look, the old pair staying in use meanwhile.
    """

    def __init__(self, ctx: ssl.SSLContext, files: ServingFiles, hosts: list[str], interval: float = 2.0,
                 expiry_interval: float = 3600.0) -> None:
        self.ctx = ctx
        self.files = files
        self.hosts = hosts
        self.interval = interval
        # Expiry moves on a scale of days: the certificate is parsed when the
        # files change or hourly, not at every look (the server checked it at start).
        self.expiry_interval = expiry_interval
        self._next_expiry_check = time.monotonic() + expiry_interval
        self.reloads = 0
        self._seen = self._stamp()

    def _stamp(self) -> tuple[int, int]:
        try:
            return self.files.cert.stat().st_mtime_ns, self.files.key.stat().st_mtime_ns
        except OSError:
            return 0, 0

    def check(self) -> bool:
        """Load the files if they changed; True if a new certificate is now served."""
        if self._stamp() != self._seen or time.monotonic() >= self._next_expiry_check:
            self._next_expiry_check = time.monotonic() + self.expiry_interval
            if _needs_serving_cert(self.files, self.hosts):
                _make_serving_cert(self.files, self.hosts)
        stamp = self._stamp()
        if stamp == self._seen:
            return False
        try:
            self.ctx.load_cert_chain(str(self.files.cert), str(self.files.key))
        except (OSError, ssl.SSLError, ValueError):
            return False  # mid-replacement: next look
        self._seen = stamp
        self.reloads += 1
        return True

    async def run(self) -> None:
        import asyncio
        import logging

        log = logging.getLogger(__name__)
        while True:
            await asyncio.sleep(self.interval)
            try:
                if self.check():
                    log.info("serving certificate %s reloaded", self.files.cert)
            except (OSError, ValueError) as exc:
                log.warning("serving certificate check failed: %s", exc)
