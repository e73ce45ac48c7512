"""The endpoints controller: a Service's selector over pods becomes its
Endpoints and EndpointSlices, which the proxy and DNS on every node follow.

Level-triggered per Service key. A pod event enqueues every Service of its
namespace whose selector matches the pod before or after the change, so a
pod leaving a selector is noticed too. Services without a selector are left
alone: their Endpoints belong to the user, as in Kubernetes.

A named ``targetPort`` is resolved per pod from its container ports, so
pods that call the same port name by different numbers land in different
subsets (and slices): that is how one Service can front backends that
listen on different ports.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from corral.client.api import ApiClient
from corral.client.errors import AlreadyExistsError, NotFoundError
from corral.client.resources import ENDPOINTS, ENDPOINTSLICES, PODS, SERVICES
from corral.clock import Clock
from corral.controllers.base import Controller
from corral.controllers.informers import SharedInformers, by_namespace
from corral.controllers.objects import (
    Obj,
    is_deleting,
    key_of,
    matches_selector,
    meta,
    namespace_of,
    split_key,
)

log = logging.getLogger(__name__)

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
MANAGED_BY = "endpointslice-controller.k8s.io"
HEADLESS_LABEL = "service.kubernetes.io/headless"

PortKey = tuple[tuple[str, int, str], ...]


def resolve_target_port(svc_port: Obj, pod: Obj) -> int | None:
    """The pod port a service port sends to: a number as is, a name looked up
    in the pod's container ports (same protocol); None when the pod has no
    port of that name."""
    target = svc_port.get("targetPort", svc_port.get("port"))
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    protocol = svc_port.get("protocol", "TCP")
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == target and port.get("protocol", "TCP") == protocol:
                return int(port["containerPort"])
    return None


def pod_ports(svc: Obj, pod: Obj) -> PortKey:
    ports = []
    for svc_port in (svc.get("spec") or {}).get("ports") or []:
        number = resolve_target_port(svc_port, pod)
        if number is not None:
            ports.append((str(svc_port.get("name") or ""), number, svc_port.get("protocol", "TCP")))
    return tuple(sorted(ports))


def _address(svc: Obj, pod: Obj) -> Obj:
    spec = pod.get("spec") or {}
    address: Obj = {
        "ip": (pod.get("status") or {}).get("podIP"),
        "targetRef": {"kind": "Pod", "namespace": namespace_of(pod),
                      "name": meta(pod).get("name"), "uid": meta(pod).get("uid")},
    }
    if spec.get("nodeName"):
        address["nodeName"] = spec["nodeName"]
    if spec.get("hostname") and spec.get("subdomain") == meta(svc).get("name"):
        address["hostname"] = spec["hostname"]
    return address


def _pod_ready(pod: Obj) -> bool:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def backends(svc: Obj, pods: list[Obj]) -> list[tuple[Obj, PortKey, bool, bool]]:
    """(pod, ports, ready, terminating) for every pod the Service selects
    that has an address, sorted by pod name so the output is stable."""
    spec = svc.get("spec") or {}
    selector = spec.get("selector") or {}
    publish = bool(spec.get("publishNotReadyAddresses"))
    out = []
    for pod in sorted(pods, key=lambda p: str(meta(p).get("name"))):
        status = pod.get("status") or {}
        if not status.get("podIP") or status.get("phase") in ("Succeeded", "Failed"):
            continue
        if not matches_selector({"matchLabels": selector}, meta(pod).get("labels") or {}):
            continue
        terminating = is_deleting(pod)
        ready = publish or (_pod_ready(pod) and not terminating)
        out.append((pod, pod_ports(svc, pod), ready, terminating))
    return out


def desired_subsets(svc: Obj, pods: list[Obj]) -> list[Obj]:
    """Endpoints subsets: backends grouped by their resolved ports; a pod that
    resolves none of a ported Service's ports is left out."""
    has_ports = bool((svc.get("spec") or {}).get("ports"))
    groups: dict[PortKey, Obj] = {}
    for pod, ports, ready, terminating in backends(svc, pods):
        if has_ports and not ports:
            continue
        if terminating and not ready:
            continue  # Endpoints lists no terminating pods (the slices do)
        subset = groups.setdefault(ports, {})
        subset.setdefault("addresses" if ready else "notReadyAddresses", []).append(_address(svc, pod))
    subsets = []
    for ports, subset in sorted(groups.items()):
        if ports:
            subset["ports"] = [{"name": n, "port": p, "protocol": proto} if n else
                               {"port": p, "protocol": proto} for n, p, proto in ports]
        subsets.append(subset)
    return subsets


def slice_name(svc_name: str, ports: PortKey) -> str:
    digest = hashlib.sha256(repr(ports).encode()).hexdigest()[:5]
    return f"{svc_name[:57]}-{digest}"


def desired_slices(svc: Obj, pods: list[Obj]) -> dict[str, Obj]:
    """One slice per distinct port set, named by a hash of it so reconciles
    are idempotent. Slices keep terminating pods (ready false) so proxies
    can drain them."""
    name = str(meta(svc).get("name"))
    has_ports = bool((svc.get("spec") or {}).get("ports"))
    groups: dict[PortKey, list[Obj]] = {}
    for pod, ports, ready, terminating in backends(svc, pods):
        if has_ports and not ports:
            continue
        endpoint: Obj = {
            "addresses": [pod["status"]["podIP"]],
            "conditions": {"ready": ready and not terminating, "serving": ready or _pod_ready(pod),
                           "terminating": terminating},
            "targetRef": _address(svc, pod)["targetRef"],
        }
        address = _address(svc, pod)
        for field in ("nodeName", "hostname"):
            if field in address:
                endpoint[field] = address[field]
        groups.setdefault(ports, []).append(endpoint)
    slices = {}
    for ports, endpoints in sorted(groups.items()):
        sname = slice_name(name, ports)
        slices[sname] = {
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": sname, "namespace": namespace_of(svc),
                         "labels": {SERVICE_NAME_LABEL: name, MANAGED_BY_LABEL: MANAGED_BY},
                         "ownerReferences": [_owner(svc)]},
            "addressType": "IPv4",
            "endpoints": endpoints,
            "ports": [{"name": n, "port": p, "protocol": proto} for n, p, proto in ports],
        }
    return slices


def _owner(svc: Obj) -> Obj:
    return {"apiVersion": "v1", "kind": "Service", "name": meta(svc).get("name"),
            "uid": meta(svc).get("uid"), "controller": True, "blockOwnerDeletion": True}


class EndpointsController(Controller):
    name = "endpoints-controller"

    def __init__(self, client: ApiClient, informers: SharedInformers, *, clock: Clock | None = None,
                 workers: int = 2) -> None:
        super().__init__(clock=clock, workers=workers)
        self.client = client
        self.services = informers.index(SERVICES, "namespace", by_namespace)
        self.pods = informers.index(PODS, "namespace", by_namespace)
        self.endpoints = informers.get(ENDPOINTS)
        self.slices = informers.index(ENDPOINTSLICES, "service", _slice_service)
        self.watches(self.services, self.pods, self.endpoints, self.slices)
        self.services.add_handler(
            on_add=self._enqueue, on_update=lambda old, new: self._enqueue(new), on_delete=self._enqueue)
        self.pods.add_handler(
            on_add=lambda p: self._pod_changed(None, p), on_update=self._pod_changed,
            on_delete=lambda p: self._pod_changed(None, p))
        self.endpoints.add_handler(on_delete=self._enqueue)
        self.slices.add_handler(on_delete=lambda s: [self.queue.add(k) for k in _slice_service(s)])

    def _enqueue(self, obj: Obj) -> None:
        self.queue.add(key_of(obj))

    def _pod_changed(self, old: Obj | None, new: Obj) -> None:
        labels = [meta(p).get("labels") or {} for p in (old, new) if p is not None]
        for svc in self.services.cache.by_index("namespace", namespace_of(new)):
            selector = (svc.get("spec") or {}).get("selector")
            if selector and any(matches_selector({"matchLabels": selector}, lb) for lb in labels):
                self.queue.add(key_of(svc))

    async def reconcile(self, key: str) -> float | None:
        namespace, name = split_key(key)
        assert namespace is not None
        svc = self.services.cache.get(key)
        if svc is None or is_deleting(svc):
            await self._delete(ENDPOINTS, namespace, name)
            for stale in self.slices.cache.by_index("service", key):
                await self._delete(ENDPOINTSLICES, namespace, str(meta(stale).get("name")))
            return None
        spec = svc.get("spec") or {}
        if not spec.get("selector") or spec.get("type") == "ExternalName":
            return None
        pods = self.pods.cache.by_index("namespace", namespace)
        await self._sync_endpoints(svc, desired_subsets(svc, pods))
        await self._sync_slices(svc, desired_slices(svc, pods))
        return None

    async def _sync_endpoints(self, svc: Obj, subsets: list[Obj]) -> None:
        key = key_of(svc)
        labels = dict(meta(svc).get("labels") or {})
        if (svc.get("spec") or {}).get("clusterIP") == "None":
            labels[HEADLESS_LABEL] = ""
        current = self.endpoints.cache.get(key)
        if current is None:
            body = {"apiVersion": "v1", "kind": "Endpoints", "subsets": subsets,
                    "metadata": {"name": meta(svc)["name"], "namespace": namespace_of(svc),
                                 "labels": labels}}
            try:
                await self.client.create(ENDPOINTS, body)
            except AlreadyExistsError:
                self.queue.add_after(key, 0.1)  # our cache is behind; look again
            return
        if (current.get("subsets") or []) == subsets and (meta(current).get("labels") or {}) == labels:
            return
        updated = dict(current, subsets=subsets)
        updated["metadata"] = dict(meta(current), labels=labels)
        await self.client.replace(ENDPOINTS, updated)

    async def _sync_slices(self, svc: Obj, wanted: dict[str, Obj]) -> None:
        namespace = namespace_of(svc)
        existing = {str(meta(s).get("name")): s for s in self.slices.cache.by_index("service", key_of(svc))}
        for sname, body in wanted.items():
            current = existing.get(sname)
            if current is None:
                try:
                    await self.client.create(ENDPOINTSLICES, body)
                except AlreadyExistsError:
                    self.queue.add_after(key_of(svc), 0.1)
            elif _slice_content(current) != _slice_content(body):
                updated = dict(current, endpoints=body["endpoints"], ports=body["ports"])
                await self.client.replace(ENDPOINTSLICES, updated)
        for sname in existing.keys() - wanted.keys():
            await self._delete(ENDPOINTSLICES, namespace, sname)

    async def _delete(self, res: Any, namespace: str, name: str) -> None:
        try:
            await self.client.delete(res, name, namespace)
        except NotFoundError:
            pass


def _slice_service(obj: Obj) -> list[str]:
    labels = meta(obj).get("labels") or {}
    if labels.get(MANAGED_BY_LABEL) != MANAGED_BY or not labels.get(SERVICE_NAME_LABEL):
        return []
    return [f"{namespace_of(obj)}/{labels[SERVICE_NAME_LABEL]}"]


def _slice_content(obj: Obj) -> tuple[Any, Any]:
    """What we compare: the server adds defaults (empty conditions, port
    protocol), so compare after filling them the same way."""
    ports = [dict({"name": "", "protocol": "TCP"}, **p) for p in obj.get("ports") or []]
    return obj.get("endpoints") or [], ports
