"""The API server reaches etcd over TLS with a client certificate
(``--etcd-cafile/--etcd-certfile/--etcd-keyfile``), and etcd started with
``--client-cert-auth`` refuses anyone without one from its CA."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from corral.client.api import ApiClient
from corral.client.resources import CONFIGMAPS
from corral.store.etcd import EtcdStore
from corral.store.etcd_conn import parse_etcd_url, with_tls_files
from corral.store.protocol import StoreError
from fixtures.etcd import ETCD, EtcdCluster, start_cluster
from fixtures.ha import ServerProcess

pytestmark = [pytest.mark.skipif(not Path(ETCD).exists(), reason="etcd is not installed"),
              pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def tls_etcd() -> Iterator[EtcdCluster]:
    cluster = start_cluster(1, tls=True)
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(cluster.base, ignore_errors=True)


async def test_server_runs_over_tls_etcd_with_a_client_certificate(tls_etcd: EtcdCluster,
                                                                   tmp_path: Path) -> None:
    tls = tls_etcd.tls
    assert tls is not None
    server = ServerProcess(tmp_path / "s0", f"etcd://{tls_etcd.endpoints}/tls-test",
                           "--etcd-cafile", str(tls.ca), "--etcd-certfile", str(tls.client_cert),
                           "--etcd-keyfile", str(tls.client_key))
    try:
        server.wait_ready(60)
        token = (tmp_path / "s0" / "tokens.csv").read_text().split(",", 1)[0]
        async with ApiClient(server.url, token=token, ca_file=str(tmp_path / "s0" / "pki" / "ca.crt")) as api:
            await api.create(CONFIGMAPS, {"metadata": {"name": "over-tls"}, "data": {"k": "v"}}, "default")
            assert (await api.get(CONFIGMAPS, "over-tls", "default"))["data"] == {"k": "v"}
    finally:
        server.stop()
    # It really went to etcd: a store opened the same way finds the object.
    store = EtcdStore(tls_etcd.url("/tls-test"))
    await store.start()
    try:
        assert await store.get("/registry/core/configmaps/default/over-tls") is not None
    finally:
        await store.close()


@pytest.mark.parametrize("case", ["no client certificate", "a certificate from another CA", "plain text"])
async def test_etcd_refuses_clients_without_its_certificate(tls_etcd: EtcdCluster, case: str) -> None:
    tls = tls_etcd.tls
    assert tls is not None
    base = f"etcd://{tls_etcd.endpoints}/tls-test?timeout=1"
    url = {"no client certificate": f"{base}&cafile={tls.ca}",
           "a certificate from another CA": f"{base}&cafile={tls.ca}&certfile={tls.ca.parent / 'rogue.crt'}"
                                            f"&keyfile={tls.ca.parent / 'rogue.key'}",
           "plain text": base}[case]
    store = EtcdStore(url)
    with pytest.raises(StoreError):
        await store.start()


def test_tls_options_are_checked_by_name(tmp_path: Path) -> None:
    cert = tmp_path / "c.pem"
    cert.write_text("x")
    with pytest.raises(ValueError, match="'certfile' and option 'keyfile' go together"):
        parse_etcd_url(f"etcd://127.0.0.1:2379?certfile={cert}")
    with pytest.raises(ValueError, match="option 'cafile': cannot read"):
        parse_etcd_url(f"etcd://127.0.0.1:2379?cafile={tmp_path / 'missing.pem'}")
    with pytest.raises(ValueError, match="need --store etcd://"):
        with_tls_files("sqlite:///x.db", str(cert), None, None)
    options = parse_etcd_url(with_tls_files("etcd://127.0.0.1:2379/r", str(cert), str(cert), str(cert)))
    assert options.tls and options.ca_file == str(cert) and options.describe() == "etcds://127.0.0.1:2379/r"
    assert parse_etcd_url("etcds://127.0.0.1:2379").tls
    assert not parse_etcd_url("etcd://127.0.0.1:2379").tls
