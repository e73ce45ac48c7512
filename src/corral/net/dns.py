"""Cluster DNS, served by every agent over UDP and TCP (dnslib wire format).

The zone (:mod:`corral.net.dnsrecords`) follows Services and EndpointSlices
through informers and is rebuilt on change, so a lookup is a dict access.
Names outside the cluster domain are forwarded to the host's resolver (the
first ``nameserver`` of /etc/resolv.conf), so pods pointed here still reach
the outside world.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from pathlib import Path
from typing import Any

from dnslib import AAAA, CNAME, PTR, QTYPE, RCODE, RR, SOA, SRV, A, DNSError, DNSRecord

from corral.client.api import ApiClient
from corral.client.informer import Informer
from corral.client.resources import ENDPOINTSLICES, SERVICES
from corral.clock import Clock, RealClock
from corral.net.dnsrecords import Zone, build_zone

log = logging.getLogger(__name__)

TTL = 5
UDP_LIMIT = 512
FORWARD_TIMEOUT = 2.0


def answer(zone: Zone, request: DNSRecord) -> DNSRecord:
    """The reply to one query, from the zone alone (no forwarding)."""
    reply = request.reply()
    q = request.q
    name = str(q.qname).lower().rstrip(".")
    qtype = QTYPE[q.qtype]
    records = _records(zone, name, qtype)
    if records:
        for rr in records:
            reply.add_answer(rr)
        return reply
    if not zone.exists(name):
        reply.header.rcode = RCODE.NXDOMAIN
    reply.add_auth(RR(zone.domain, QTYPE.SOA, ttl=TTL, rdata=SOA(
        f"ns.dns.{zone.domain}", f"hostmaster.{zone.domain}", (1, 7200, 1800, 86400, TTL))))
    return reply


def _records(zone: Zone, name: str, qtype: str) -> list[RR]:
    if name in zone.cname and qtype != "CNAME":
        return [RR(name, QTYPE.CNAME, ttl=TTL, rdata=CNAME(zone.cname[name]))]
    if qtype == "CNAME" and name in zone.cname:
        return [RR(name, QTYPE.CNAME, ttl=TTL, rdata=CNAME(zone.cname[name]))]
    if qtype in ("A", "ANY"):
        ips = zone.a.get(name) or ([p] if (p := zone.pod_address(name)) else [])
        return [RR(name, QTYPE.A, ttl=TTL, rdata=A(ip)) for ip in ips]
    if qtype == "SRV":
        out = [RR(name, QTYPE.SRV, ttl=TTL, rdata=SRV(s.priority, s.weight, s.port, s.target))
               for s in zone.srv.get(name, [])]
        return out
    if qtype == "PTR" and name in zone.ptr:
        return [RR(name, QTYPE.PTR, ttl=TTL, rdata=PTR(zone.ptr[name]))]
    if qtype == "AAAA":
        return [RR(name, QTYPE.AAAA, ttl=TTL, rdata=AAAA(ip))
                for ip in zone.a.get(name, []) if ":" in ip]
    return []


def host_nameserver(path: Path = Path("/etc/resolv.conf")) -> str | None:
    try:
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "nameserver":
                return parts[1]
    except OSError:
        return None
    return None


class ClusterDns:
    def __init__(self, client: ApiClient, *, address: str = "127.0.0.1", port: int = 0,
                 domain: str = "cluster.local", upstream: str | None = None,
                 clock: Clock | None = None) -> None:
        self.address = address
        self.port = port
        self.domain = domain
        self.upstream = upstream if upstream is not None else host_nameserver()
        self.clock = clock or RealClock()
        self.services = Informer(client, SERVICES, clock=self.clock)
        self.slices = Informer(client, ENDPOINTSLICES, clock=self.clock)
        self.zone = Zone(domain=domain)
        self.bound = asyncio.Event()
        self._dirty = asyncio.Event()
        for informer in (self.services, self.slices):
            informer.add_handler(on_add=self._changed, on_update=self._changed, on_delete=self._changed)

    def _changed(self, *_: Any) -> None:
        self._dirty.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        tcp = await asyncio.start_server(self._tcp, self.address, self.port)
        self.port = tcp.sockets[0].getsockname()[1]
        udp, _ = await loop.create_datagram_endpoint(lambda: _UdpDns(self), local_addr=(self.address, self.port))
        tasks = [asyncio.create_task(self.services.run(), name="dns services"),
                 asyncio.create_task(self.slices.run(), name="dns slices")]
        log.info("cluster DNS for %s on %s:%d (udp and tcp)", self.domain, self.address, self.port)
        try:
            await self.services.wait_synced()
            await self.slices.wait_synced()
            while True:
                self._dirty.clear()
                self.zone = build_zone(self.services.cache.list(), self.slices.cache.list(), self.domain)
                self.bound.set()
                await self._dirty.wait()
        finally:
            udp.close()
            tcp.close()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def resolve(self, data: bytes) -> bytes | None:
        """Wire in, wire out; None for a packet that is not a DNS query."""
        try:
            request = DNSRecord.parse(data)
        except (DNSError, struct.error, IndexError, ValueError):
            return None
        if not request.questions:
            reply = request.reply()
            reply.header.rcode = RCODE.FORMERR
            return bytes(reply.pack())
        name = str(request.q.qname)
        if not self.zone.in_zone(name) and self.upstream:
            forwarded = await self._forward(data)
            if forwarded is not None:
                return forwarded
        if not self.zone.in_zone(name):
            reply = request.reply()
            reply.header.rcode = RCODE.SERVFAIL if self.upstream else RCODE.REFUSED
            return bytes(reply.pack())
        return bytes(answer(self.zone, request).pack())

    async def _forward(self, data: bytes) -> bytes | None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bytes] = loop.create_future()

        class _Once(asyncio.DatagramProtocol):
            def datagram_received(self, reply: bytes, addr: Any) -> None:
                if not future.done():
                    future.set_result(reply)

        transport, _ = await loop.create_datagram_endpoint(_Once, remote_addr=(str(self.upstream), 53))
        try:
            transport.sendto(data)
            return await asyncio.wait_for(future, FORWARD_TIMEOUT)
        except (TimeoutError, OSError):
            return None
        finally:
            transport.close()

    async def _tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                size = struct.unpack("!H", await reader.readexactly(2))[0]
                reply = await self.resolve(await reader.readexactly(size))
                if reply is None:
                    return
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


class _UdpDns(asyncio.DatagramProtocol):
    def __init__(self, dns: ClusterDns) -> None:
        self.dns = dns
        self.transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        asyncio.get_running_loop().create_task(self._reply(data, addr))

    async def _reply(self, data: bytes, addr: tuple[str, int]) -> None:
        reply = await self.dns.resolve(data)
        if reply is None:
            return
        if len(reply) > UDP_LIMIT:
            record = DNSRecord.parse(reply)
            record.rr = []
            record.header.tc = 1
            reply = bytes(record.pack())
        self.transport.sendto(reply, addr)
