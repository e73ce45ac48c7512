"""DNS answers from the zone: A, SRV, headless, ExternalName, PTR, pod
names, and NXDOMAIN versus NODATA."""

from __future__ import annotations

from dnslib import QTYPE, RCODE, DNSRecord

from corral.net.dns import answer
from corral.net.dnsrecords import build_zone

SERVICES = [
    {"metadata": {"namespace": "ns", "name": "web"},
     "spec": {"clusterIP": "127.43.0.7", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}},
    {"metadata": {"namespace": "ns", "name": "db"}, "spec": {"clusterIP": "None"}},
    {"metadata": {"namespace": "ns", "name": "ext"},
     "spec": {"type": "ExternalName", "externalName": "example.org"}},
]
SLICES = [{"metadata": {"namespace": "ns", "labels": {"kubernetes.io/service-name": "db"}},
           "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}],
           "endpoints": [{"addresses": ["127.0.0.5"], "hostname": "db-0", "conditions": {"ready": True}},
                         {"addresses": ["127.0.0.6"], "conditions": {"ready": True}},
                         {"addresses": ["127.0.0.8"], "conditions": {"ready": False}}]}]
ZONE = build_zone(SERVICES, SLICES)


def ask(name: str, qtype: str = "A") -> DNSRecord:
    return answer(ZONE, DNSRecord.question(name, qtype))


def data(reply: DNSRecord) -> list[str]:
    return sorted(str(rr.rdata) for rr in reply.rr)


def test_cluster_ip_service() -> None:
    assert data(ask("web.ns.svc.cluster.local")) == ["127.43.0.7"]
    assert data(ask("WEB.ns.svc.cluster.local.")) == ["127.43.0.7"]  # case-insensitive


def test_srv_for_named_ports() -> None:
    assert data(ask("_http._tcp.web.ns.svc.cluster.local", "SRV")) == ["0 100 80 web.ns.svc.cluster.local."]
    assert data(ask("_pg._tcp.db.ns.svc.cluster.local", "SRV")) == [
        "0 100 5432 127-0-0-6.db.ns.svc.cluster.local.", "0 100 5432 db-0.db.ns.svc.cluster.local."]


def test_headless_lists_ready_endpoints() -> None:
    assert data(ask("db.ns.svc.cluster.local")) == ["127.0.0.5", "127.0.0.6"]
    assert data(ask("db-0.db.ns.svc.cluster.local")) == ["127.0.0.5"]


def test_external_name_is_a_cname() -> None:
    reply = ask("ext.ns.svc.cluster.local")
    assert [QTYPE[rr.rtype] for rr in reply.rr] == ["CNAME"]
    assert data(reply) == ["example.org."]


def test_ptr_and_pod_names() -> None:
    assert data(ask("7.0.43.127.in-addr.arpa", "PTR")) == ["web.ns.svc.cluster.local."]
    assert data(ask("127-0-0-9.ns.pod.cluster.local")) == ["127.0.0.9"]


def test_nxdomain_versus_nodata() -> None:
    missing = ask("nope.ns.svc.cluster.local")
    assert missing.header.rcode == RCODE.NXDOMAIN and not missing.rr
    assert QTYPE[missing.auth[0].rtype] == "SOA"
    nodata = ask("web.ns.svc.cluster.local", "AAAA")
    assert nodata.header.rcode == RCODE.NOERROR and not nodata.rr
    intermediate = ask("ns.svc.cluster.local")
    assert intermediate.header.rcode == RCODE.NOERROR and not intermediate.rr
