"""Admission: the checks and mutations a write gets between decoding and storage.

Kept apart from the generic handlers so that each rule is one small
function with a name; the handlers run them in order for every create
(and, where it matters, update).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from corral.api.errors import Forbidden, Invalid, ServiceUnavailable, not_found
from corral.api.objects import ObjectStore
from corral.resources.registry import Registry
from corral.resources.types import FieldCause, ResourceType
from corral.store.protocol import StoreUnavailableError

Obj = dict[str, Any]

NODE_PORT_RANGE = range(30000, 32768)


async def require_live_namespace(objects: ObjectStore, registry: Registry, namespace: str) -> None:
    """Namespaced objects need their namespace, and not a terminating one.
    The watch-fed index answers for namespaces it knows live; the store for
    the rest (api/namespaces.py)."""
    index = objects.namespaces
    if index is not None and index.known_live(namespace):
        return
    ns_type = registry.lookup("", "v1", "namespaces")
    assert ns_type is not None
    try:
        kv = await objects.store.get(ns_type.key(None, namespace))
    except StoreUnavailableError as exc:
        raise ServiceUnavailable(f"storage is unavailable: {exc}") from exc
    if kv is None:
        raise not_found("namespaces", namespace)
    if b'"deletionTimestamp"' in kv.value:
        raise Forbidden(
            f"unable to create new content in namespace {namespace} because it is being terminated",
            kind="namespaces", name=namespace,
        )


class ServiceAllocator:
    """Cluster IPs and node ports for Services.

    The range defaults to a 127.x block so a one-machine cluster reaches its
    services without any packet rewriting. Allocation scans what is stored,
    so it needs no state of its own and survives restarts; a race between
    two creates that pick the same address is possible in theory on several
    API servers and is caught by the proxy's duplicate check (later issue).
    """

    def __init__(self, cidr: str = "127.43.0.0/16") -> None:
        self.network = ipaddress.ip_network(cidr)

    async def _in_use(self, objects: ObjectStore, rt: ResourceType) -> tuple[set[str], set[int]]:
        ips: set[str] = set()
        ports: set[int] = set()
        from corral.api.codec import decode

        result = await objects.store.list(rt.storage_prefix)
        for kv in result.items:
            svc = decode(kv)
            spec = svc.get("spec") or {}
            ips.update(spec.get("clusterIPs") or [spec.get("clusterIP") or ""])
            ports.update(int(p["nodePort"]) for p in spec.get("ports") or [] if p.get("nodePort"))
        return ips, ports

    async def allocate(self, objects: ObjectStore, rt: ResourceType, svc: Obj) -> None:
        spec = svc.setdefault("spec", {})
        stype = spec.get("type", "ClusterIP")
        if stype == "ExternalName":
            return
        ips, ports = await self._in_use(objects, rt)
        ip = spec.get("clusterIP")
        if ip in (None, ""):
            spec["clusterIP"] = self._free_ip(ips)
        elif ip != "None":
            try:
                addr = ipaddress.ip_address(ip)
            except ValueError:
                message = f'Invalid value: "{ip}": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)'
                raise Invalid(
                    f'Service "{svc["metadata"].get("name")}" is invalid: spec.clusterIPs[0]: {message}',
                    causes=[FieldCause("spec.clusterIPs[0]", message)],
                ) from None
            if addr not in self.network:
                raise Invalid(
                    f'Service "{svc["metadata"].get("name")}" is invalid: spec.clusterIP: Invalid value: '
                    f'"{ip}": provided IP is not in the valid range. The range of valid IPs is {self.network}',
                    causes=[FieldCause("spec.clusterIP", f'Invalid value: "{ip}": provided IP is not in the valid range')],
                )
            if ip in ips:
                raise Invalid(
                    f'Service "{svc["metadata"].get("name")}" is invalid: spec.clusterIP: Invalid value: '
                    f'"{ip}": provided IP is already allocated',
                    causes=[FieldCause("spec.clusterIP", f'Invalid value: "{ip}": provided IP is already allocated')],
                )
        spec["clusterIPs"] = [spec["clusterIP"]]
        if stype in ("NodePort", "LoadBalancer"):
            self._assign_node_ports(spec, ports)

    def _free_ip(self, used: set[str]) -> str:
        # Skip the network address and .1 (kept for the cluster DNS service).
        for i, addr in enumerate(self.network.hosts()):
            if i == 0:
                continue
            if str(addr) not in used:
                return str(addr)
        raise ServiceUnavailable(f"no free cluster IP left in {self.network}")

    def _assign_node_ports(self, spec: Obj, used: set[int]) -> None:
        for i, port in enumerate(spec.get("ports") or []):
            wanted = port.get("nodePort")
            if wanted:
                if wanted in used:
                    raise Invalid(
                        f"spec.ports[{i}].nodePort: Invalid value: {wanted}: provided port is already allocated",
                        causes=[FieldCause(f"spec.ports[{i}].nodePort", f"Invalid value: {wanted}: provided port is already allocated")],
                    )
                used.add(wanted)
                continue
            free = next((p for p in NODE_PORT_RANGE if p not in used), None)
            if free is None:
                raise ServiceUnavailable("no free node port left in 30000-32767")
            port["nodePort"] = free
            used.add(free)
