"""The pure parts of the agent hop's TLS: which SANs a node may have, whose
certificate an agent must show, when a stored credential is reused, and each
API server's own kubelet-client certificate from a shared CA."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

from cryptography import x509

from corral.agent.servingcert import (
    KUBELET_CLIENT_CN,
    caller_identity,
    new_serving_csr,
    sans_of,
    stored_serving_problem,
)
from corral.api.auth import User
from corral.api.kubelet_client import ensure_client_certificate, identity_problem, node_endpoint
from corral.api.kubelet_serving import issue_local, requester_may_ask, san_problem
from corral.api.tls import ensure_serving_files

NODE = {"metadata": {"name": "n1"}, "status": {
    "addresses": [{"type": "InternalIP", "address": "10.0.0.5"}, {"type": "Hostname", "address": "box5"}],
    "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}}}


def _csr(sans: list[str], node: str = "n1") -> x509.CertificateSigningRequest:
    return x509.load_pem_x509_csr(new_serving_csr(node, sans)[0])


def test_sans_must_be_the_nodes_own_addresses_and_names() -> None:
    assert san_problem(_csr(["10.0.0.5", "n1", "box5"]), NODE) == ""
    assert "10.0.0.6 is not an address" in san_problem(_csr(["10.0.0.5", "10.0.0.6"]), NODE)
    assert "n2 is not a name" in san_problem(_csr(["n2"]), NODE)
    assert "box5" not in san_problem(_csr(["box5"]), NODE)


def test_only_the_node_itself_or_an_admin_may_ask() -> None:
    node = User("system:node:n1", groups=("system:nodes",))
    assert requester_may_ask(node, "system:node:n1", ["system:nodes"])
    assert not requester_may_ask(node, "system:node:n2", ["system:nodes"])
    assert not requester_may_ask(node, "system:node:n1", ["system:masters"])
    assert requester_may_ask(User("admin", groups=("system:masters",)), "system:node:n2", ["system:nodes"])
    assert not requester_may_ask(User("alice"), "system:node:n1", ["system:nodes"])


def test_the_agent_must_be_the_pods_node() -> None:
    cert = {"subject": ((("organizationName", "system:nodes"),), (("commonName", "system:node:n1"),))}
    assert identity_problem(cert, "n1") == ""
    assert "not 'system:node:n2'" in identity_problem(cert, "n2")
    assert "no one" in identity_problem(None, "n1")
    assert caller_identity({"subject": ((("commonName", KUBELET_CLIENT_CN),),)}) == KUBELET_CLIENT_CN
    endpoint = node_endpoint(NODE)
    assert endpoint is not None and endpoint.url == "https://10.0.0.5:10250" and endpoint.node == "n1"
    v6 = {"metadata": {"name": "n6"}, "status": {"addresses": [{"type": "InternalIP", "address": "fd00::6"}],
                                                   "daemonEndpoints": {"kubeletEndpoint": {"Port": 1}}}}
    assert node_endpoint(v6).url == "https://[fd00::6]:1"  # type: ignore[union-attr]
    assert node_endpoint({"metadata": {"name": "x"}, "status": {}}) is None


def test_a_stored_serving_certificate_is_reused_only_while_it_fits(tmp_path: Path) -> None:
    files = ensure_serving_files(tmp_path / "s", ["127.0.0.1"])
    pki, ca = files.ca_cert.parent, files.ca_cert.read_bytes()
    dest = tmp_path / "agent" / "pki" / "node-serving.pem"
    issue_local(pki, "n1", ["127.0.0.1"], dest)
    assert dest.stat().st_mode & 0o777 == 0o600
    serial = x509.load_pem_x509_certificate(dest.read_bytes()).serial_number
    assert stored_serving_problem(dest, "n1", ["127.0.0.1", "n1"], ca) == ""
    assert "does not name 10.0.0.9" in stored_serving_problem(dest, "n1", ["10.0.0.9"], ca)
    assert "not for system:node:n2" in stored_serving_problem(dest, "n2", ["127.0.0.1"], ca)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=400)
    assert "expired" in stored_serving_problem(dest, "n1", ["127.0.0.1"], ca, now=later)
    issue_local(pki, "n1", ["127.0.0.1"], dest)  # still fits: kept
    assert x509.load_pem_x509_certificate(dest.read_bytes()).serial_number == serial
    cert = x509.load_pem_x509_certificate(dest.read_bytes())
    assert sans_of(cert) == {"127.0.0.1", "n1"}
    other = ensure_serving_files(tmp_path / "other", ["127.0.0.1"]).ca_cert.read_bytes()
    assert "not signed by the cluster CA" in stored_serving_problem(dest, "n1", ["127.0.0.1"], other)


def test_each_api_server_makes_its_own_client_certificate_from_the_shared_ca(tmp_path: Path) -> None:
    first = ensure_serving_files(tmp_path / "s0", ["127.0.0.1"]).ca_cert.parent
    second = tmp_path / "s1" / "pki"
    second.mkdir(parents=True)
    for name in ("ca.crt", "ca.key"):
        shutil.copy(first / name, second / name)
    a, b = ensure_client_certificate(first), ensure_client_certificate(second)
    ca = x509.load_pem_x509_certificate((first / "ca.crt").read_bytes())
    certs = [x509.load_pem_x509_certificate(p.read_bytes()) for p in (a, b)]
    for cert in certs:
        cert.verify_directly_issued_by(ca)
        assert cert.subject.rfc4514_string() == f"CN={KUBELET_CLIENT_CN}"
    assert certs[0].serial_number != certs[1].serial_number
    assert ensure_client_certificate(first) == a  # reused while young
    assert x509.load_pem_x509_certificate(a.read_bytes()).serial_number == certs[0].serial_number
    late = dt.datetime.now(dt.UTC) + dt.timedelta(days=300)  # past 70 % of a year: renewed
    ensure_client_certificate(first, now=late)
    assert x509.load_pem_x509_certificate(a.read_bytes()).serial_number != certs[0].serial_number


def test_an_agents_404_stays_a_404() -> None:
    from corral.api.errors import BadRequest, NotFound
    from corral.api.proxy import _refusal

    gone = _refusal(404, 'pod "web" not found on node n1')
    assert isinstance(gone, NotFound) and "not found on node n1" in str(gone)
    assert isinstance(_refusal(400, "not started yet"), BadRequest)
    assert "agent answered 500" in str(_refusal(500, ""))
