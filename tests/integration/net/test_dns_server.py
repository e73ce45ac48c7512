"""The cluster DNS server over real UDP and TCP sockets, following a real
API server's Services."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

from dnslib import RCODE, DNSRecord

from corral.client.resources import SERVICES
from corral.net.dns import ClusterDns
from corral.testing import running_server


def query(port: int, name: str, qtype: str = "A", tcp: bool = False) -> DNSRecord:
    q = DNSRecord.question(name, qtype)
    return DNSRecord.parse(q.send("127.0.0.1", port, tcp=tcp, timeout=2))


async def test_dns_follows_services_over_udp_and_tcp(tmp_path: Path) -> None:
    async with running_server(tmp_path) as server, server.client() as client:
        dns = ClusterDns(client, address="127.0.0.1", port=0, upstream="")
        task = asyncio.create_task(dns.run())
        try:
            await asyncio.wait_for(dns.bound.wait(), 10)
            name = "web.default.svc.cluster.local"
            assert (await asyncio.to_thread(query, dns.port, name)).header.rcode == RCODE.NXDOMAIN
            svc = await client.create(SERVICES, {
                "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
                "spec": {"ports": [{"name": "http", "port": 80}]}})
            ip = svc["spec"]["clusterIP"]
            deadline = time.monotonic() + 10
            while True:
                reply = await asyncio.to_thread(query, dns.port, name)
                if [str(r.rdata) for r in reply.rr] == [ip]:
                    break
                assert time.monotonic() < deadline, reply
                await asyncio.sleep(0.05)
            tcp = await asyncio.to_thread(query, dns.port, "_http._tcp." + name, "SRV", True)
            assert [str(r.rdata) for r in tcp.rr] == [f"0 100 80 {name}."]
            outside = await asyncio.to_thread(query, dns.port, "example.org")
            assert outside.header.rcode == RCODE.REFUSED  # no upstream configured
            # garbage gets no answer and does not kill the server
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.sendto(b"\x00\x01junk", ("127.0.0.1", dns.port))
            assert (await asyncio.to_thread(query, dns.port, name)).rr
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
