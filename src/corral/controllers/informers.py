"""One informer per resource, shared by every controller in the process
(client-go's shared informer factory).

Sharing means one list+watch per kind however many controllers care, one
decode per event, and that all of them see the same cache. The control
plane hands one set to the controller manager and the scheduler alike.
Indexes are registered by name and only once, so two controllers asking
for the same index share it. Cached objects are shared too: nobody may
change one in place (copy it first).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from corral.client.api import ApiClient
from corral.client.informer import Informer, strip_managed_fields
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
        self._tasks: dict[Informer, asyncio.Task[None]] = {}
        self._runners = 0
        self._failed: asyncio.Future[None] | None = None

    def get(self, res: Resource, *, field_selector: str | None = None) -> Informer:
        """The informer of ``res`` (with that field selector), made on first
        ask; one asked for while the set runs starts at once."""
        key = (res, field_selector)
        informer = self._informers.get(key)
        if informer is None:
            informer = Informer(self.client, res, field_selector=field_selector, clock=self.clock,
                                transform=strip_managed_fields)
            self._informers[key] = informer
            self._indexes[key] = set()
            if self._runners:
                self._start(informer)
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

    @property
    def running(self) -> bool:
        return self._runners > 0

    async def run(self) -> None:
        """Run every informer, and each one made later, until cancelled.

        Each component sharing the set runs it, so each can also live alone:
        the informers run once, from the first caller's start to the last
        caller's stop. An informer that dies (they retry everything, so a
        bug) raises here in every caller."""
        self._runners += 1
        try:
            if self._runners == 1:
                self._failed = asyncio.get_running_loop().create_future()
                for informer in self._informers.values():
                    self._start(informer)
            assert self._failed is not None
            # Shielded: one caller cancelled must not cancel the others' wait.
            await asyncio.shield(self._failed)
        finally:
            self._runners -= 1
            if self._runners == 0:
                await self._stop_all()

    def _start(self, informer: Informer) -> None:
        task = asyncio.create_task(informer.run(), name=f"informer-{informer.res.plural}")
        self._tasks[informer] = task
        task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        failed = self._failed
        if task.cancelled() or failed is None or failed.done():
            return
        exc = task.exception()
        failed.set_exception(exc or RuntimeError(f"{task.get_name()} stopped"))

    async def _stop_all(self) -> None:
        tasks, self._tasks = list(self._tasks.values()), {}
        failed, self._failed = self._failed, None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if failed is not None and failed.done() and not failed.cancelled():
            failed.exception()  # retrieved: no "never retrieved" warning
