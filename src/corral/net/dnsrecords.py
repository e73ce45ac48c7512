"""The cluster's DNS zone computed from Services and EndpointSlices, following
the Kubernetes DNS specification:

* ``svc.ns.svc.<domain>``: A to the cluster IP; for a headless Service, A to
  every ready endpoint; for an ExternalName Service, CNAME to its name.
* ``_port._proto.svc.ns.svc.<domain>``: SRV for each named port (headless:
  one per endpoint, pointing at the endpoint's own name).
* ``hostname.svc.ns.svc.<domain>``: A for headless endpoints with a hostname.
* ``a-b-c-d.ns.pod.<domain>``: A to a.b.c.d.
* PTR for cluster IPs and headless endpoints.

A name that exists with other types (or is an empty non-terminal such as
``ns.svc.<domain>``) answers NODATA; any other name in the zone NXDOMAIN.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]

SERVICE_NAME_LABEL = "kubernetes.io/service-name"


@dataclass(frozen=True)
class Srv:
    port: int
    target: str
    priority: int = 0
    weight: int = 100


@dataclass
class Zone:
    domain: str = "cluster.local"
    a: dict[str, list[str]] = field(default_factory=dict)
    cname: dict[str, str] = field(default_factory=dict)
    srv: dict[str, list[Srv]] = field(default_factory=dict)
    ptr: dict[str, str] = field(default_factory=dict)
    names: set[str] = field(default_factory=set)

    def in_zone(self, name: str) -> bool:
        name = name.lower().rstrip(".")
        return name == self.domain or name.endswith("." + self.domain) or name.endswith(".in-addr.arpa")

    def exists(self, name: str) -> bool:
        name = name.lower().rstrip(".")
        if name in self.names or name in self.ptr or self.pod_address(name):
            return True
        return name == self.domain or any(n.endswith("." + name) for n in self.names)

    def pod_address(self, name: str) -> str | None:
        """``1-2-3-4.ns.pod.<domain>`` names its own address."""
        suffix = f".pod.{self.domain}"
        if not name.endswith(suffix):
            return None
        parts = name[: -len(suffix)].split(".")
        if len(parts) != 2:
            return None
        try:
            return str(ipaddress.IPv4Address(parts[0].replace("-", ".")))
        except ValueError:
            return None

    def _add(self, table: dict[str, Any], name: str, value: Any) -> None:
        table.setdefault(name, []).append(value)
        self.names.add(name)


def reverse_name(ip: str) -> str:
    return ipaddress.ip_address(ip).reverse_pointer


def _ready_endpoints(slices: list[Obj]) -> list[tuple[Obj, Obj]]:
    out = []
    for sl in slices:
        for endpoint in sl.get("endpoints") or []:
            if (endpoint.get("conditions") or {}).get("ready") is False:
                continue
            out.append((sl, endpoint))
    return out


def build_zone(services: list[Obj], slices: list[Obj], domain: str = "cluster.local") -> Zone:
    zone = Zone(domain=domain)
    by_service: dict[str, list[Obj]] = {}
    for sl in slices:
        meta = sl.get("metadata") or {}
        name = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
        if name:
            by_service.setdefault(f"{meta.get('namespace')}/{name}", []).append(sl)
    for svc in services:
        meta, spec = svc.get("metadata") or {}, svc.get("spec") or {}
        ns, name = str(meta.get("namespace")), str(meta.get("name"))
        fqdn = f"{name}.{ns}.svc.{domain}".lower()
        if spec.get("type") == "ExternalName":
            zone.cname[fqdn] = str(spec.get("externalName", "")).rstrip(".")
            zone.names.add(fqdn)
            continue
        ip = spec.get("clusterIP")
        if ip and ip != "None":
            _add_cluster_ip(zone, fqdn, str(ip), spec)
        elif ip == "None":
            _add_headless(zone, fqdn, by_service.get(f"{ns}/{name}", []))
        zone.names.add(fqdn)
    return zone


def _add_cluster_ip(zone: Zone, fqdn: str, ip: str, spec: Obj) -> None:
    zone._add(zone.a, fqdn, ip)
    zone.ptr[reverse_name(ip)] = fqdn
    for port in spec.get("ports") or []:
        if port.get("name"):
            srv_name = f"_{port['name']}._{str(port.get('protocol', 'TCP')).lower()}.{fqdn}"
            zone._add(zone.srv, srv_name, Srv(int(port["port"]), fqdn))


def _add_headless(zone: Zone, fqdn: str, slices: list[Obj]) -> None:
    for sl, endpoint in _ready_endpoints(slices):
        for ip in endpoint.get("addresses") or []:
            zone._add(zone.a, fqdn, str(ip))
            host = endpoint.get("hostname") or str(ip).replace(".", "-")
            target = f"{host}.{fqdn}".lower()
            zone._add(zone.a, target, str(ip))
            zone.ptr.setdefault(reverse_name(str(ip)), target)
            for port in sl.get("ports") or []:
                if port.get("name") and port.get("port"):
                    srv_name = f"_{port['name']}._{str(port.get('protocol', 'TCP')).lower()}.{fqdn}"
                    zone._add(zone.srv, srv_name, Srv(int(port["port"]), target))
