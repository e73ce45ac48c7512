"""One informer per resource, shared by every controller in the process.

Sharing means one list+watch per kind however many controllers care, and
that all controllers see the same cache. Indexes are registered by name and
only once, so two controllers asking for the same index share it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from corral.client.api import ApiClient
from corral.client.informer import Informer
from corral.client.resources import Resource
from corral.clock import Clock, RealClock
from corral.controllers.objects import Obj, meta, namespace_of

log = logging.getLogger(__name__)


def by_namespace(obj: Obj) -> list[str]:
    return [namespace_of(obj)]


def by_owner_uid(obj: Obj) -> list[str]:
    return [r["uid"] for r in meta(obj).get("ownerReferences") or [] if r.get("uid")]


def by_uid(obj: Obj) -> list[str]:
    uid = meta(obj).get("uid")
    return [uid] if uid else []


class SharedInformers:
    def __init__(self, client: ApiClient, *, clock: Clock | None = None) -> None:
        self.client = client
        self.clock: Clock = clock or RealClock()
        self._informers: dict[tuple[Resource, str | None], Informer] = {}
        self._indexes: dict[tuple[Resource, str | None], set[str]] = {}

    def get(self, res: Resource, *, field_selector: str | None = None) -> Informer:
        key = (res, field_selector)
        informer = self._informers.get(key)
        if informer is None:
            informer = Informer(self.client, res, field_selector=field_selector, clock=self.clock)
            self._informers[key] = informer
            self._indexes[key] = set()
        return informer

    def index(
        self,
        res: Resource,
        name: str,
        func: Callable[[Obj], list[str]],
        *,
        field_selector: str | None = None,
    ) -> Informer:
        informer = self.get(res, field_selector=field_selector)
        names = self._indexes[(res, field_selector)]
        if name not in names:
            informer.add_index(name, func)
            names.add(name)
        return informer

    @property
    def informers(self) -> list[Informer]:
        return list(self._informers.values())

    async def run(self) -> None:
        """Run every informer created so far until cancelled."""
        tasks = [asyncio.create_task(i.run()) for i in self._informers.values()]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
