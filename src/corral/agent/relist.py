"""One look per interval at every running container of the node, as the
kubelet's PLEG relists: a worker whose container stopped is woken for a
full sync (and with it the restart or the final status).

Each idle pod worker used to do this itself, with a timer and a wake of its
own task every second: a hundred running pods were a hundred timers and
task switches a second, on the loop that also serves the API, and more so
in a burst of starts, where every pod that already runs polls while the
others start. Here one task looks at all of them in one pass, and stops
when no worker has a running container. :class:`Wake` is how a worker is
woken, by this and by everything else.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from corral.clock import Clock

log = logging.getLogger(__name__)


class Watched(Protocol):
    """What the relist needs of a pod worker."""

    namespace: str
    name: str

    async def stopped_running(self) -> bool: ...

    def wake(self) -> None: ...


class Relist:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.interval = 1.0
        self._watched: dict[Watched, None] = {}  # insertion-ordered: oldest first
        self._task: asyncio.Task[None] | None = None

    def watch(self, worker: Watched, interval: float) -> None:
        """Look at ``worker`` every ``interval`` until :meth:`unwatch` (or
        until it is woken for a stopped container)."""
        self.interval = interval
        self._watched[worker] = None
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="pod relist")

    def unwatch(self, worker: Watched) -> None:
        self._watched.pop(worker, None)

    @property
    def watching(self) -> int:
        return len(self._watched)

    async def _run(self) -> None:
        while self._watched:
            await self.clock.sleep(self.interval)
            for worker in list(self._watched):
                if worker not in self._watched:  # unwatched while an earlier look awaited
                    continue
                try:
                    stopped = await worker.stopped_running()
                except Exception:
                    log.exception("pod %s/%s: looking at its containers failed", worker.namespace, worker.name)
                    stopped = True  # its own sync looks again, and retries
                if stopped and worker in self._watched:
                    del self._watched[worker]
                    worker.wake()

    async def close(self) -> None:
        self._watched.clear()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


class Wake:
    """What wakes an idle worker (the informer, a probe, the relist): an
    :class:`asyncio.Event` for its one waiter, without the two tasks and
    ``asyncio.wait`` per wait that waiting on an Event and a sleep at once
    took (every pod idles between its syncs, a burst's pods among them)."""

    __slots__ = ("_set", "waiter")

    def __init__(self) -> None:
        self._set = False
        self.waiter: asyncio.Future[None] | None = None

    def set(self) -> None:
        self._set = True
        if self.waiter is not None:
            settle(self.waiter)

    def clear(self) -> None:
        self._set = False

    def is_set(self) -> bool:
        return self._set


def settle(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
