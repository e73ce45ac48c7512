"""ConfigMaps and Secrets read for pods' volumes, shared by all the pods of
a node for a few seconds (the kubelet's TTL cache strategy).

Every pod mounts ``kube-root-ca.crt`` through its projected token volume,
and object-backed volumes are re-read periodically so that updates reach
running containers. Read per pod, a node with 100 pods sent ~20 GETs a
second for one ConfigMap, and a burst of pod starts sent one GET per pod.
With the cache, one read per object serves every pod for ``ttl`` seconds,
and concurrent readers of the same object share one request. An update is
therefore seen at most ``ttl`` later than before.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from corral.client.api import ApiClient
from corral.client.errors import NotFoundError
from corral.client.resources import Resource

DEFAULT_TTL = 5.0
PRUNE_ABOVE = 1024  # entries; expired ones are dropped when the cache grows past this

Key = tuple[str, str, str]  # (plural, namespace, name)


class ObjectCache:
    def __init__(self, client: ApiClient, ttl: float = DEFAULT_TTL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.ttl = ttl
        self._clock = clock
        self._entries: dict[Key, tuple[float, dict[str, Any] | NotFoundError]] = {}
        self._reading: dict[Key, asyncio.Task[dict[str, Any] | NotFoundError]] = {}

    async def get(self, res: Resource, name: str, namespace: str) -> dict[str, Any]:
        """The object as read at most ``ttl`` ago; raises NotFoundError (also
        remembered for ``ttl``) or any other ApiError of a fresh read."""
        key = (res.plural, namespace, name)
        now = self._clock()
        entry = self._entries.get(key)
        if entry is not None and now - entry[0] < self.ttl:
            return _result(entry[1])
        task = self._reading.get(key)
        if task is None:
            task = asyncio.ensure_future(self._read(res, name, namespace))
            self._reading[key] = task
            task.add_done_callback(lambda _t: self._reading.pop(key, None))
        return _result(await asyncio.shield(task))

    async def _read(self, res: Resource, name: str, namespace: str) -> dict[str, Any] | NotFoundError:
        started = self._clock()
        try:
            outcome: dict[str, Any] | NotFoundError = await self.client.get(res, name, namespace)
        except NotFoundError as exc:
            outcome = exc
        if len(self._entries) >= PRUNE_ABOVE:
            self._prune(started)
        self._entries[(res.plural, namespace, name)] = (started, outcome)
        return outcome

    def _prune(self, now: float) -> None:
        for key in [k for k, (at, _) in self._entries.items() if now - at >= self.ttl]:
            del self._entries[key]


def _result(outcome: dict[str, Any] | NotFoundError) -> dict[str, Any]:
    if isinstance(outcome, NotFoundError):
        raise outcome.with_traceback(None)  # one instance, raised again: keep its traceback short
    return outcome
