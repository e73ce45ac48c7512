"""The ``kubernetes`` Service in ``default``: how pods reach the API.

In Kubernetes the API server keeps this Service (the first address of the
service range, port 443 named ``https``) and its endpoints (the API
servers' addresses) in place; in-cluster clients read its address from the
``KUBERNETES_SERVICE_HOST``/``_PORT`` variables every pod gets. Here the
leader's controller manager keeps it, with an Endpoints object and an
EndpointSlice naming the API server it talks to. The Service has no
selector, so the endpoints controller leaves both alone, and the service
proxy forwards the cluster address to the API server like any other
Service. The API server's certificate names that address (bootstrap.py).
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

from corral.client.api import ApiClient
from corral.client.errors import AlreadyExistsError, ApiError, ConflictError, NotFoundError
from corral.client.resources import ENDPOINTS, ENDPOINTSLICES, SERVICES, Resource
from corral.clock import Clock
from corral.controllers.base import Controller
from corral.controllers.informers import SharedInformers
from corral.controllers.objects import Obj, meta

log = logging.getLogger(__name__)

NAME = "kubernetes"
NAMESPACE = "default"
KEY = f"{NAMESPACE}/{NAME}"
RESYNC = 30.0
MANAGED_BY = "corral-apiserver-endpoints"
"""Not the endpointslice controller's value, so it leaves the slice alone."""


def first_service_ip(cidr: str) -> str:
    """Kubernetes' choice for this Service: the range's first host address."""
    return str(next(ipaddress.ip_network(cidr).hosts()))


def desired_objects(cluster_ip: str, address: str, port: int) -> dict[str, Obj]:
    """Service, Endpoints and EndpointSlice, as Kubernetes writes them."""
    labels = {"component": "apiserver", "provider": "kubernetes"}
    family = "IPv6" if ipaddress.ip_address(address).version == 6 else "IPv4"
    return {
        "services": {
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": labels},
            "spec": {"type": "ClusterIP", "clusterIP": cluster_ip, "sessionAffinity": "None",
                     "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}]},
        },
        "endpoints": {
            "apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": NAME, "namespace": NAMESPACE,
                         "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
            "subsets": [{"addresses": [{"ip": address}],
                         "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}],
        },
        "endpointslices": {
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": NAME, "namespace": NAMESPACE,
                         "labels": {"kubernetes.io/service-name": NAME,
                                    "endpointslice.kubernetes.io/managed-by": MANAGED_BY}},
            "addressType": family,
            "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
            "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
        },
    }


def _differs(current: Obj, want: Obj) -> bool:
    """Only the fields this controller owns (the API fills in the rest)."""
    for field in ("subsets", "endpoints", "ports", "addressType"):
        if field in want and current.get(field) != want[field]:
            return True
    if "spec" in want:
        spec = current.get("spec") or {}
        return spec.get("ports") != want["spec"]["ports"] or bool(spec.get("selector"))
    labels = meta(current).get("labels") or {}
    return any(labels.get(k) != v for k, v in (meta(want).get("labels") or {}).items())


class KubernetesServiceController(Controller):
    name = "kubernetes-service-controller"

    def __init__(self, client: ApiClient, informers: SharedInformers, *, service_cidr: str,
                 address: str, port: int, clock: Clock | None = None) -> None:
        super().__init__(clock=clock, workers=1)
        self.client = client
        self.cluster_ip = first_service_ip(service_cidr)
        self.want = desired_objects(self.cluster_ip, address, port)
        self.informers = {res.plural: informers.get(res, field_selector=f"metadata.name={NAME}")
                          for res in (SERVICES, ENDPOINTS, ENDPOINTSLICES)}
        self.watches(*self.informers.values())
        for informer in self.informers.values():
            informer.add_handler(on_add=self._changed, on_update=lambda old, new: self._changed(new),
                                 on_delete=self._changed)
        self.queue.add(KEY)

    def _changed(self, obj: Obj) -> None:
        if meta(obj).get("namespace") == NAMESPACE:
            self.queue.add(KEY)

    async def reconcile(self, key: str) -> float | None:
        for res in (SERVICES, ENDPOINTS, ENDPOINTSLICES):
            try:
                await self._ensure(res)
            except (AlreadyExistsError, ConflictError):
                return 0.5
            except NotFoundError:
                return 1.0  # the default namespace is being made
            except ApiError as exc:
                log.warning("keeping the kubernetes Service: %s %s: %s", res.kind, NAME, exc)
                return 5.0
        return RESYNC

    async def _ensure(self, res: Resource) -> None:
        want = self.want[res.plural]
        current = self.informers[res.plural].cache.get(KEY)
        if current is None:
            await self.client.create(res, want)
            log.info("created %s %s", res.kind, KEY)
            return
        if not _differs(current, want):
            return
        fixed: dict[str, Any] = dict(current)
        if "spec" in want:
            spec = dict(current.get("spec") or {})
            spec["ports"] = want["spec"]["ports"]
            spec.pop("selector", None)
            fixed["spec"] = spec
        for field in ("subsets", "endpoints", "ports", "addressType"):
            if field in want:
                fixed[field] = want[field]
        fixed["metadata"] = {**meta(current),
                             "labels": {**(meta(current).get("labels") or {}), **meta(want)["labels"]}}
        await self.client.replace(res, fixed)
