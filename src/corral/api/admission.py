"""Admission: the checks and mutations a write gets between decoding and storage.

Kept apart from the generic handlers so that each rule is one small
function with a name; the handlers run them in order for every create
(and, where it matters, update).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Any

from corral.api.errors import Forbidden, Invalid, ServiceUnavailable, not_found
from corral.api.objects import ObjectStore
from corral.api.reservations import Reservations
from corral.clock import Clock, RealClock
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
    so it needs no state of its own and survives restarts, and confirms each
    pick with a claim in the store (api/reservations.py), so concurrent
    creates, in one process or in several, never share an address or port.
    """

    def __init__(self, cidr: str = "127.43.0.0/16", clock: Clock | None = None) -> None:
        self.network = ipaddress.ip_network(cidr)
        clock = clock or RealClock()
        self.ip_claims = Reservations("/registry/ranges/serviceips/", clock)
        self.port_claims = Reservations("/registry/ranges/servicenodeports/", clock)

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

    async def allocate(self, objects: ObjectStore, rt: ResourceType, svc: Obj, namespace: str, *,
                       dry_run: bool = False) -> None:
        """A dry run picks what a real create would, and claims nothing."""
        spec = svc.setdefault("spec", {})
        stype = spec.get("type", "ClusterIP")
        if stype == "ExternalName":
            return
        ips, ports = await self._in_use(objects, rt)
        meta = svc.get("metadata") or {}
        owner = f"{namespace}/{meta.get('name') or meta.get('generateName') or ''}"
        claims = _Claims(self.ip_claims, objects, owner, dry_run)
        ip = spec.get("clusterIP")
        if ip in (None, ""):
            used = ips | await self.ip_claims.held(objects.store, ips)
            chosen = await claims.first(self._free_ips(used))
            if chosen is None:
                raise ServiceUnavailable(f"no free cluster IP left in {self.network}")
            spec["clusterIP"] = chosen
        elif ip != "None":
            self._check_requested_ip(svc, ip)
            await self.ip_claims.held(objects.store, ips)  # sweeps stale claims first
            if ip in ips or not await claims.one(ip):
                raise Invalid(
                    f'Service "{svc["metadata"].get("name")}" is invalid: spec.clusterIP: Invalid value: '
                    f'"{ip}": provided IP is already allocated',
                    causes=[FieldCause("spec.clusterIP", f'Invalid value: "{ip}": provided IP is already allocated')],
                )
        spec["clusterIPs"] = [spec["clusterIP"]]
        if stype in ("NodePort", "LoadBalancer"):
            await self._assign_node_ports(objects, spec, ports, _Claims(self.port_claims, objects, owner, dry_run))

    async def release(self, objects: ObjectStore, svc: Obj) -> None:
        """Frees a deleted Service's address and ports at once, so another
        Service may ask for them; what this misses (a delete finished by a
        finalizer's removal) the sweep frees after the grace period."""
        meta = svc.get("metadata") or {}
        owner = f"{meta.get('namespace') or ''}/{meta.get('name') or ''}"
        spec = svc.get("spec") or {}
        for ip in spec.get("clusterIPs") or [spec.get("clusterIP")]:
            if ip and ip != "None":
                await self.ip_claims.release(objects.store, ip, owner)
        for port in spec.get("ports") or []:
            if port.get("nodePort"):
                await self.port_claims.release(objects.store, str(port["nodePort"]), owner)

    def _check_requested_ip(self, svc: Obj, ip: str) -> None:
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

    def _free_ips(self, used: set[str]) -> Iterator[str]:
        # Skip the network address and .1 (kept for the cluster DNS service).
        for i, addr in enumerate(self.network.hosts()):
            if i != 0 and str(addr) not in used:
                yield str(addr)

    async def _assign_node_ports(self, objects: ObjectStore, spec: Obj, stored: set[int], claims: _Claims) -> None:
        """``stored``: the node ports of stored Services; claims by others
        (e.g. a create in flight) rule a port out too."""
        held = await self.port_claims.held(objects.store, {str(p) for p in stored})
        used = stored | {int(p) for p in held if p.isdigit()}
        mine: set[int] = set()
        for i, port in enumerate(spec.get("ports") or []):
            wanted = port.get("nodePort")
            if wanted:
                if wanted in stored or wanted in mine or not await claims.one(str(wanted)):
                    raise Invalid(
                        f"spec.ports[{i}].nodePort: Invalid value: {wanted}: provided port is already allocated",
                        causes=[FieldCause(f"spec.ports[{i}].nodePort", f"Invalid value: {wanted}: provided port is already allocated")],
                    )
                used.add(wanted)
                mine.add(wanted)
                continue
            free = await claims.first(str(p) for p in NODE_PORT_RANGE if p not in used)
            if free is None:
                raise ServiceUnavailable("no free node port left in 30000-32767")
            port["nodePort"] = int(free)
            used.add(int(free))
            mine.add(int(free))


class _Claims:
    """One create's claims on one range; a dry run's take nothing."""

    def __init__(self, reservations: Reservations, objects: ObjectStore, owner: str, dry_run: bool) -> None:
        self.reservations, self.store, self.owner, self.dry_run = reservations, objects.store, owner, dry_run

    async def one(self, value: str) -> bool:
        return True if self.dry_run else await self.reservations.claim(self.store, value, self.owner)

    async def first(self, candidates: Iterator[str]) -> str | None:
        if self.dry_run:
            return next(candidates, None)
        return await self.reservations.claim_first(self.store, candidates, self.owner)
