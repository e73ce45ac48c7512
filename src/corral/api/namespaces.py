"""Which namespaces are live, kept current by a store watch, so that a create
does not read its namespace from the store every time.

This is Kubernetes' NamespaceLifecycle admission: a namespace the index
knows as live is trusted; one it does not know (not synced yet, just
created, or terminating) is read from the store, which decides. A namespace
that this server is deleting is read from the store for a while
(``FORCE_LIVE_SECONDS``) whatever the index says, so a create racing the
delete cannot slip in on a stale entry. As in Kubernetes, a delete made
through another API server reaches this one's index through its watch.
"""

from __future__ import annotations

import time

from corral.api.storefollower import StoreFollower
from corral.store.protocol import EventType, Store

FORCE_LIVE_SECONDS = 30.0
_TERMINATING = b'"deletionTimestamp"'


class NamespaceIndex(StoreFollower):
    name = "namespace index"

    def __init__(self, store: Store, prefix: str) -> None:
        super().__init__()
        self.store = store
        self.prefix = prefix
        self.live: set[str] = set()
        self._forced: dict[str, float] = {}

    def known_live(self, name: str) -> bool:
        """True only when the index can vouch for ``name``; False means "ask the store"."""
        if not self.synced or name not in self.live:
            return False
        if self._forced:
            until = self._forced.get(name)
            if until is not None:
                if time.monotonic() < until:
                    return False
                del self._forced[name]
        return True

    def forget(self, name: str) -> None:
        """This server is about to delete ``name``: read it from the store for a while."""
        self._forced[name] = time.monotonic() + FORCE_LIVE_SECONDS
        self.live.discard(name)

    def _name(self, key: str) -> str:
        return key[len(self.prefix):]

    async def _sync_and_watch(self) -> None:
        result = await self.store.list(self.prefix)
        self.live = {self._name(kv.key) for kv in result.items if _TERMINATING not in kv.value}
        self.synced = True
        watch = self.store.watch(self.prefix, result.revision)
        try:
            async for event in watch:
                name = self._name(event.kv.key)
                if event.type is EventType.DELETE or _TERMINATING in event.kv.value:
                    self.live.discard(name)
                else:
                    self.live.add(name)
        finally:
            await watch.close()
