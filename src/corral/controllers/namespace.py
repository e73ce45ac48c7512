"""The namespace controller: empty a terminating namespace, then finalize it.

The API server marks a deleted namespace Terminating and keeps it while
spec.finalizers holds "kubernetes". We delete every namespaced object in it
(live lists, not caches: this must not miss a kind no informer watches),
wait until they are really gone (pods stop gracefully, finalizers run), and
then drop our finalizer through the ``finalize`` subresource; the server
removes the namespace when nothing else holds it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from corral.client.api import ApiClient
from corral.client.errors import ConflictError, NotFoundError
from corral.client.resources import ALL, NAMESPACES, Resource
from corral.clock import Clock
from corral.controllers.base import Controller
from corral.controllers.informers import SharedInformers
from corral.controllers.objects import Obj, is_deleting, key_of, meta

log = logging.getLogger(__name__)

FINALIZER = "kubernetes"
RECHECK_SECONDS = 2.0


def remaining_finalizers(ns: Obj) -> list[str]:
    return [f for f in (ns.get("spec") or {}).get("finalizers") or [] if f != FINALIZER]


class NamespaceController(Controller):
    name = "namespace-controller"

    def __init__(
        self,
        client: ApiClient,
        informers: SharedInformers,
        *,
        resources: Sequence[Resource] | None = None,
        clock: Clock | None = None,
        workers: int = 1,
    ) -> None:
        super().__init__(clock=clock, workers=workers)
        self.client = client
        self.resources = [r for r in (resources or ALL) if r.namespaced]
        self.ns_informer = informers.get(NAMESPACES)
        self.watches(self.ns_informer)
        self.ns_informer.add_handler(
            on_add=self._changed, on_update=lambda old, new: self._changed(new)
        )

    def _changed(self, ns: Obj) -> None:
        if is_deleting(ns):
            self.queue.add(key_of(ns))

    async def reconcile(self, key: str) -> float | None:
        ns = self.ns_informer.cache.get(key)
        if ns is None or not is_deleting(ns):
            return None
        if FINALIZER not in ((ns.get("spec") or {}).get("finalizers") or []):
            return None
        left = await self._delete_contents(key)
        if left:
            log.info("namespace %s: waiting for %d objects to go", key, left)
            return RECHECK_SECONDS
        body = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": key, "resourceVersion": meta(ns).get("resourceVersion")},
            "spec": {"finalizers": remaining_finalizers(ns)},
        }
        try:
            await self.client.replace(NAMESPACES, body, subresource="finalize")
        except NotFoundError:
            # Gone already is fine; a 404 for a namespace that still exists
            # is a server without the finalize route, and must be retried.
            await self.client.get(NAMESPACES, key)
            raise
        except ConflictError:
            fresh = await self.client.get(NAMESPACES, key)
            body["metadata"]["resourceVersion"] = meta(fresh).get("resourceVersion")
            body["spec"]["finalizers"] = remaining_finalizers(fresh)
            await self.client.replace(NAMESPACES, body, subresource="finalize")
        return None

    async def _delete_contents(self, namespace: str) -> int:
        """Delete what is in the namespace; return how many objects remain."""
        left = 0
        for res in self.resources:
            items, _ = await self.client.list_all(res, namespace)
            for obj in items:
                left += 1
                if is_deleting(obj):
                    continue
                try:
                    await self.client.delete(
                        res, meta(obj)["name"], namespace, propagation_policy="Background"
                    )
                except NotFoundError:
                    left -= 1
        return left
