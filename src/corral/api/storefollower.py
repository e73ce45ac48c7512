"""A server-side index kept current from the store: list, then watch, and
list again after any break (compacted history, a store hiccup).

The API server keeps a few such indexes so that hot request paths answer
from memory (namespace liveness, which namespaces have quota policies).
Until the first list completes, or while re-listing, ``synced`` is False
and callers fall back to reading the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

log = logging.getLogger(__name__)

RELIST_DELAY = 1.0  # seconds between a broken watch and the next list


class StoreFollower:
    name = "store index"  # for the task name and the log

    def __init__(self) -> None:
        self.synced = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name.replace(" ", "-"))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
            self._task = None
        self.synced = False

    async def _run(self) -> None:
        while True:
            try:
                await self._sync_and_watch()
            except asyncio.CancelledError:
                raise
            except Exception:  # compacted history or a store hiccup: list again
                log.warning("%s: re-listing", self.name, exc_info=True)
            self.synced = False
            await asyncio.sleep(RELIST_DELAY)

    async def _sync_and_watch(self) -> None:
        """List (setting ``synced``), then follow the watch until it ends."""
        raise NotImplementedError
