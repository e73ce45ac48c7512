"""The root CA publisher: every live namespace has a ConfigMap
``kube-root-ca.crt`` whose ``ca.crt`` is the cluster's CA, so a pod's
projected API-access volume (see api/admit_serviceaccount.py) can carry
the certificate its client must trust. Like Kubernetes'
root-ca-cert-publisher it puts the ConfigMap back when deleted and
rewrites it when edited or when the CA changes.
"""

from __future__ import annotations

import logging

from corral.client.api import ApiClient
from corral.client.errors import AlreadyExistsError, ConflictError, ForbiddenError, NotFoundError
from corral.client.resources import CONFIGMAPS, NAMESPACES
from corral.clock import Clock
from corral.controllers.base import Controller
from corral.controllers.informers import SharedInformers
from corral.controllers.objects import Obj, is_deleting, meta

log = logging.getLogger(__name__)

NAME = "kube-root-ca.crt"
KEY = "ca.crt"
ANNOTATION = "kubernetes.io/description"
DESCRIPTION = ("Contains a CA bundle that can be used to verify the kube-apiserver when using "
               "internal endpoints such as the internal service IP or kubernetes.default.svc. "
               "No other usage is guaranteed across distributions of Kubernetes clusters.")


class RootCAPublisher(Controller):
    name = "root-ca-cert-publisher"

    def __init__(self, client: ApiClient, informers: SharedInformers, ca_pem: str, *,
                 clock: Clock | None = None, workers: int = 1) -> None:
        super().__init__(clock=clock, workers=workers)
        self.client = client
        self.ca_pem = ca_pem
        self.namespaces = informers.get(NAMESPACES)
        self.configmaps = informers.get(CONFIGMAPS, field_selector=f"metadata.name={NAME}")
        self.watches(self.namespaces, self.configmaps)
        self.namespaces.add_handler(on_add=self._namespace, on_update=lambda old, new: self._namespace(new))
        self.configmaps.add_handler(on_update=lambda old, new: self._configmap(new), on_delete=self._configmap)

    def _namespace(self, ns: Obj) -> None:
        self.queue.add(str(meta(ns).get("name")))

    def _configmap(self, cm: Obj) -> None:
        if meta(cm).get("name") == NAME:
            self.queue.add(str(meta(cm).get("namespace")))

    def desired(self, namespace: str) -> Obj:
        return {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": NAME, "namespace": namespace, "annotations": {ANNOTATION: DESCRIPTION}},
                "data": {KEY: self.ca_pem}}

    async def reconcile(self, key: str) -> float | None:
        ns = self.namespaces.cache.get(key)
        if ns is None or is_deleting(ns):
            return None
        current = self.configmaps.cache.get(f"{key}/{NAME}")
        try:
            if current is None:
                await self.client.create(CONFIGMAPS, self.desired(key))
                log.info("published %s in namespace %s", NAME, key)
            elif (current.get("data") or {}) != {KEY: self.ca_pem} or current.get("binaryData"):
                fixed = {k: v for k, v in current.items() if k != "binaryData"}
                fixed["data"] = {KEY: self.ca_pem}
                await self.client.replace(CONFIGMAPS, fixed)
        except (AlreadyExistsError, ConflictError):
            return 0.5  # the cache is behind: look again from fresh state
        except (NotFoundError, ForbiddenError):
            pass  # the namespace went away or began terminating meanwhile
        return None
