"""What the proxy should listen on, computed from Services and EndpointSlices.

Pure functions over the objects, so the rules (which endpoints count as
ready, how a service port finds its slice port, which addresses a NodePort
opens) are tested without sockets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]

SERVICE_NAME_LABEL = "kubernetes.io/service-name"


@dataclass(frozen=True)
class ListenKey:
    protocol: str  # TCP or UDP
    ip: str
    port: int


@dataclass
class PortPlan:
    """One port of one Service: where it listens and where it forwards."""

    service: str  # namespace/name
    port_name: str
    protocol: str
    listen: list[ListenKey] = field(default_factory=list)
    backends: list[tuple[str, int]] = field(default_factory=list)
    affinity_seconds: float | None = None

    @property
    def ident(self) -> str:
        return f"{self.service}:{self.port_name}/{self.protocol}"


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def ready_backends(slices: list[Obj], port_name: str, protocol: str) -> list[tuple[str, int]]:
    """Ready endpoints at the slice port named like the service port. An
    endpoint with no ``ready`` condition counts as ready (the API's rule);
    a terminating one never does."""
    out: list[tuple[str, int]] = []
    for sl in slices:
        port = next((p for p in sl.get("ports") or []
                     if (p.get("name") or "") == port_name and p.get("protocol", "TCP") == protocol), None)
        if port is None or port.get("port") is None:
            continue
        for endpoint in sl.get("endpoints") or []:
            conditions = endpoint.get("conditions") or {}
            if conditions.get("ready") is False or conditions.get("terminating"):
                continue
            out.extend((str(a), int(port["port"])) for a in endpoint.get("addresses") or [])
    return sorted(set(out))


def _affinity(spec: Obj) -> float | None:
    if spec.get("sessionAffinity") != "ClientIP":
        return None
    config = ((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {})
    return float(config.get("timeoutSeconds") or 10800)


def plan(services: list[Obj], slices: list[Obj], node_addresses: list[str]) -> list[PortPlan]:
    """Every port the proxy should serve: cluster IP listeners for each
    ClusterIP-family Service port (TCP and UDP), NodePort listeners on the
    node's addresses."""
    by_service: dict[str, list[Obj]] = {}
    for sl in slices:
        name = (_meta(sl).get("labels") or {}).get(SERVICE_NAME_LABEL)
        if name:
            by_service.setdefault(f"{_meta(sl).get('namespace')}/{name}", []).append(sl)
    plans: list[PortPlan] = []
    for svc in services:
        spec = svc.get("spec") or {}
        ip = spec.get("clusterIP")
        if spec.get("type") == "ExternalName" or not ip or ip == "None":
            continue
        key = f"{_meta(svc).get('namespace')}/{_meta(svc).get('name')}"
        for port in spec.get("ports") or []:
            protocol = port.get("protocol", "TCP")
            if protocol not in ("TCP", "UDP") or not port.get("port"):
                continue
            name = str(port.get("name") or "")
            p = PortPlan(key, name, protocol, affinity_seconds=_affinity(spec),
                         backends=ready_backends(by_service.get(key, []), name, protocol))
            p.listen.append(ListenKey(protocol, str(ip), int(port["port"])))
            if port.get("nodePort") and spec.get("type") in ("NodePort", "LoadBalancer"):
                p.listen.extend(ListenKey(protocol, a, int(port["nodePort"])) for a in node_addresses)
            plans.append(p)
    return plans
