"""The service-account controller: every live namespace has a ServiceAccount
named ``default``, so pods that name none have an identity to run as.

Level-triggered on namespaces and on ServiceAccounts (deleting ``default``
brings it back), from the informer caches.
"""

from __future__ import annotations

import logging

from corral.client.api import ApiClient
from corral.client.errors import AlreadyExistsError, ForbiddenError, NotFoundError
from corral.client.resources import NAMESPACES, SERVICEACCOUNTS
from corral.clock import Clock
from corral.controllers.base import Controller
from corral.controllers.informers import SharedInformers
from corral.controllers.objects import Obj, is_deleting, meta

log = logging.getLogger(__name__)

DEFAULT_NAME = "default"


class ServiceAccountController(Controller):
    name = "serviceaccount-controller"

    def __init__(self, client: ApiClient, informers: SharedInformers, *, clock: Clock | None = None,
                 workers: int = 1) -> None:
        super().__init__(clock=clock, workers=workers)
        self.client = client
        self.namespaces = informers.get(NAMESPACES)
        self.accounts = informers.get(SERVICEACCOUNTS)
        self.watches(self.namespaces, self.accounts)
        self.namespaces.add_handler(on_add=self._namespace, on_update=lambda old, new: self._namespace(new))
        self.accounts.add_handler(on_delete=self._account)

    def _namespace(self, ns: Obj) -> None:
        self.queue.add(str(meta(ns).get("name")))

    def _account(self, sa: Obj) -> None:
        if meta(sa).get("name") == DEFAULT_NAME:
            self.queue.add(str(meta(sa).get("namespace")))

    async def reconcile(self, key: str) -> float | None:
        ns = self.namespaces.cache.get(key)
        if ns is None or is_deleting(ns):
            return None
        if self.accounts.cache.get(f"{key}/{DEFAULT_NAME}") is not None:
            return None
        body = {"apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": DEFAULT_NAME, "namespace": key}}
        try:
            await self.client.create(SERVICEACCOUNTS, body)
            log.info("created ServiceAccount %s/%s", key, DEFAULT_NAME)
        except AlreadyExistsError:
            pass
        except (NotFoundError, ForbiddenError):
            pass  # the namespace went away or began terminating meanwhile
        return None
