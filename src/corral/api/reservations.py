"""Claims on scarce values (a Service's cluster IP, a node port) that two
concurrent creates can never both win.

Picking "the first address no stored Service uses" is a race: two creates
read the same Services and pick the same address, whether they run in one
event loop (each awaits the store in between) or in several API processes.
So the pick is confirmed by creating a key for the value in the store
(``/registry/ranges/serviceips/127.43.0.7``, beside where Kubernetes keeps
its allocation ranges); the store's create-if-absent lets exactly one of
them through, and the loser tries the next value.

Deleting a Service releases its claims. What no delete releases (a create
that failed after claiming, a delete completed by removing a finalizer) is
swept: a claim older than ``grace`` whose value no stored object uses is
stale and is deleted by the next allocation, with compare-and-swap, so a
claim that was just renewed is left alone.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

import orjson

from corral.clock import Clock
from corral.store.protocol import ConflictError, KeyExistsError, KeyNotFoundError, Store

GRACE_SECONDS = 120.0
"""Longer than any create can take (requests time out after 60 s), so a claim
whose object is not stored yet is never taken for stale."""


class Reservations:
    def __init__(self, prefix: str, clock: Clock, grace: float = GRACE_SECONDS) -> None:
        if not prefix.startswith("/") or not prefix.endswith("/"):
            raise ValueError(f"prefix: must start and end with '/', got {prefix!r}")
        self.prefix = prefix
        self.clock = clock
        self.grace = grace

    async def held(self, store: Store, in_use: set[str]) -> set[str]:
        """Values claimed and not stale; stale claims are deleted on the way."""
        result = await store.list(self.prefix)
        now = self.clock.now().timestamp()
        held = set()
        for kv in result.items:
            value = kv.key[len(self.prefix):]
            if value in in_use or not self._expired(kv.value, now):
                held.add(value)
                continue
            try:
                await store.delete(kv.key, kv.mod_revision)
            except (ConflictError, KeyNotFoundError):
                held.add(value)  # someone renewed or swept it meanwhile; leave it to them
        return held

    async def claim(self, store: Store, value: str, owner: str) -> bool:
        """True if this caller now holds ``value``; False if another does.
        The same owner may claim again (a Service deleted and created anew
        under its name keeps its fixed address)."""
        key = self.prefix + value
        record = orjson.dumps({"owner": owner, "at": self.clock.now().timestamp()})
        try:
            await store.create(key, record)
            return True
        except KeyExistsError:
            pass
        current = await store.get(key)
        if current is None or _owner(current.value) != owner:
            return False
        try:
            await store.update(key, record, current.mod_revision)
        except (ConflictError, KeyNotFoundError):
            return False
        return True

    async def release(self, store: Store, value: str, owner: str) -> None:
        """Drops ``owner``'s claim on ``value``; another owner's stays."""
        current = await store.get(self.prefix + value)
        if current is None or _owner(current.value) != owner:
            return
        with contextlib.suppress(ConflictError, KeyNotFoundError):
            await store.delete(current.key, current.mod_revision)

    async def claim_first(self, store: Store, candidates: Iterable[str], owner: str) -> str | None:
        """The first of ``candidates`` this caller manages to claim."""
        for value in candidates:
            if await self.claim(store, value, owner):
                return value
        return None

    def _expired(self, record: bytes, now: float) -> bool:
        """Unreadable records count as expired: nobody can rely on them."""
        try:
            at = float(orjson.loads(record)["at"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return True
        return now - at > self.grace


def _owner(record: bytes) -> str | None:
    try:
        owner = orjson.loads(record).get("owner")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return owner if isinstance(owner, str) else None
