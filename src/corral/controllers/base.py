"""The controller runner: informers feed a work queue, workers reconcile keys.

This is the sample-controller pattern. Event handlers only enqueue keys; a
worker takes a key, re-reads the object from the informer cache and converges
the world towards it. Nothing depends on seeing every event, so a missed or
merged event is harmless: the next reconcile of the key sees the latest state.

A reconcile that raises is retried with per-key exponential backoff (a
:class:`ConflictError` is the common case: another writer won, so we retry
from fresh cache state). A reconcile may also ask to be looked at again after
a delay by returning a number of seconds (minReadySeconds, progress
deadlines).
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Iterable

from corral.client.errors import ApiError, ConflictError
from corral.client.informer import Informer
from corral.client.workqueue import QueueShutDown, WorkQueue
from corral.clock import Clock, RealClock

log = logging.getLogger(__name__)


class Controller(ABC):
    """One control loop. Subclasses register informer handlers in their
    constructor and implement :meth:`reconcile`."""

    name: str = "controller"

    def __init__(self, *, clock: Clock | None = None, workers: int = 2) -> None:
        self.clock: Clock = clock or RealClock()
        self.queue = WorkQueue(clock=self.clock, base_delay=0.01, max_delay=60.0)
        self.workers = workers
        self._watched: list[Informer] = []

    def watches(self, *informers: Informer) -> None:
        """Informers whose first list must finish before workers start, so a
        reconcile never mistakes an empty cache for an empty world."""
        self._watched.extend(informers)

    @abstractmethod
    async def reconcile(self, key: str) -> float | None:
        """Converge one object; return seconds until it should be looked at
        again even without events, or None."""

    async def run(self) -> None:
        """Wait for caches, then run workers until cancelled."""
        for informer in self._watched:
            await informer.wait_synced()
        log.info("%s: caches synced, starting %d workers", self.name, self.workers)
        tasks = [
            asyncio.create_task(self._worker(), name=f"{self.name}-worker-{i}")
            for i in range(self.workers)
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            self.queue.shutdown()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _worker(self) -> None:
        while True:
            try:
                key = await self.queue.get()
            except QueueShutDown:
                return
            try:
                await self.process(key)
            finally:
                self.queue.done(key)

    async def process(self, key: str) -> None:
        """One reconcile with the retry policy applied; never raises except
        on cancellation, so one bad object cannot kill a worker."""
        try:
            again = await self.reconcile(key)
        except asyncio.CancelledError:
            raise
        except ConflictError:
            log.debug("%s: conflict on %s, retrying from fresh state", self.name, key)
            self.queue.add_rate_limited(key)
            return
        except ApiError as exc:
            log.warning("%s: reconcile %s failed: %s", self.name, key, exc)
            self.queue.add_rate_limited(key)
            return
        except Exception:
            log.exception("%s: reconcile %s crashed", self.name, key)
            self.queue.add_rate_limited(key)
            return
        self.queue.forget(key)
        if again is not None:
            self.queue.add_after(key, max(0.0, again))

    def enqueue_all(self, keys: Iterable[str]) -> None:
        for key in keys:
            self.queue.add(key)
