"""`corral certs` lists every certificate corral uses; `corral certs renew`
re-issues the serving certificate and the running server serves it without
a restart."""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
import socket
import ssl
from pathlib import Path

from click.testing import CliRunner, Result
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import Users
from corral.api.certs import load_ca
from corral.cli.main import main
from corral.cli.token import create_token
from corral.client.nodecert import bootstrap_node_certificate
from corral.client.resources import NAMESPACES
from fixtures.etcd import make_tls


async def _corral(*args: str) -> Result:
    return await asyncio.to_thread(CliRunner().invoke, main, list(args))


def _served_certificate(url: str, ca: Path) -> x509.Certificate:
    host, port = url.removeprefix("https://").rsplit(":", 1)
    ctx = ssl.create_default_context(cafile=str(ca))
    with socket.create_connection((host, int(port)), timeout=5) as raw, \
            ctx.wrap_socket(raw, server_hostname=host) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def _sans(cert: x509.Certificate) -> set[str]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(v) for v in san.get_values_for_type(x509.IPAddress)} | set(san.get_values_for_type(x509.DNSName))


async def test_certs_lists_every_certificate_and_renew_needs_no_restart(secure: Users, tmp_path: Path) -> None:
    server = secure.server
    data = server.options.data_dir
    async with server.client() as admin:
        token = await create_token(admin)
        await bootstrap_node_certificate(server.url, token, server.ca_file, "n1", data / "agent" / "pki")
        etcd = make_tls(tmp_path / "etcd")
        listed = await _corral("certs", "--data-dir", str(data), "--etcd-certfile", str(etcd.client_cert),
                               "--etcd-cafile", str(etcd.ca))
        assert listed.exit_code == 0, listed.output
        rows = {line.split("\t")[0]: line.split("\t") for line in listed.output.splitlines()[1:]}
        assert set(rows) == {"cluster CA", "API server serving", "API server kubelet client", "node client",
                             "etcd client", "etcd CA"}
        assert rows["API server kubelet client"][2] == "CN=kube-apiserver-kubelet-client"
        assert "CN=system:node:n1" in rows["node client"][2] and "O=system:nodes" in rows["node client"][2]
        assert "127.0.0.1" in rows["API server serving"][3] and "localhost" in rows["API server serving"][3]
        assert int(rows["API server serving"][5]) >= 360
        assert rows["etcd client"][2] == "CN=corral-apiserver-etcd-client"

        before = await asyncio.to_thread(_served_certificate, server.url, server.ca_file)
        await admin.list(NAMESPACES)  # a kept-alive connection, opened before the renewal
        renewed = await _corral("certs", "--data-dir", str(data), "renew", "--host", "api.corral.test")
        assert renewed.exit_code == 0, renewed.output

        async def served_new() -> x509.Certificate | None:
            for _ in range(100):
                cert = await asyncio.to_thread(_served_certificate, server.url, server.ca_file)
                if cert.serial_number != before.serial_number:
                    return cert
                await asyncio.sleep(0.1)
            return None

        after = await served_new()
        assert after is not None, "the running server still serves the old certificate"
        assert _sans(after) == _sans(before) | {"api.corral.test"}
        await admin.list(NAMESPACES)  # and clients carry on


def _short_serving_cert(pki: Path, days: int) -> None:
    ca_cert, ca_key = load_ca(pki)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "old")]))
            .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=300)).not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    (pki / "apiserver.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                          serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))
    (pki / "apiserver.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


async def test_a_running_server_renews_a_serving_certificate_near_expiry(secure: Users, tmp_path: Path) -> None:
    server = secure.server
    offline = tmp_path / "copy" / "pki"
    shutil.copytree(server.options.data_dir / "pki", offline)
    _short_serving_cert(offline, days=10)
    listed = await _corral("certs", "--data-dir", str(offline.parent))
    assert "(renew soon)" in listed.output

    crt = server.options.data_dir / "pki" / "apiserver.crt"
    _short_serving_cert(server.options.data_dir / "pki", days=10)

    async def renewed_and_served() -> bool:
        on_disk = x509.load_pem_x509_certificate(crt.read_bytes())
        if on_disk.not_valid_after_utc - dt.datetime.now(dt.UTC) < dt.timedelta(days=300):
            return False
        served = await asyncio.to_thread(_served_certificate, server.url, server.ca_file)
        return served.serial_number == on_disk.serial_number

    for _ in range(100):
        if await renewed_and_served():
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the server did not renew and serve a certificate 10 days from expiry")
    cert = x509.load_pem_x509_certificate(crt.read_bytes())
    assert {"localhost", "127.0.0.1"} <= _sans(cert) and cert.subject.rfc4514_string() == "CN=corral-apiserver"
