"""What a controller is waiting to see in its informer after its own writes.

A controller that creates three pods must not create three more on its next
reconcile just because the pod informer has not delivered them yet. It
records the creations (and the keys of pods it deletes) it expects, the
handlers tick them off as events arrive, and the controller only manages
replicas again once expectations are met, or have expired (a lost watch
event must not wedge an owner forever).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from corral.clock import Clock

EXPECTATIONS_TTL = 300.0


@dataclass
class _Expectation:
    adds: int = 0
    deletes: set[str] = field(default_factory=set)
    since: float = 0.0


class Expectations:
    def __init__(self, clock: Clock, ttl: float = EXPECTATIONS_TTL) -> None:
        self._clock = clock
        self._ttl = ttl
        self._by_owner: dict[str, _Expectation] = {}

    def satisfied(self, owner: str) -> bool:
        exp = self._by_owner.get(owner)
        if exp is None:
            return True
        if exp.adds <= 0 and not exp.deletes:
            return True
        return self._clock.monotonic() - exp.since > self._ttl

    def expect_creations(self, owner: str, count: int) -> None:
        self._by_owner[owner] = _Expectation(adds=count, since=self._clock.monotonic())

    def expect_deletions(self, owner: str, keys: list[str]) -> None:
        self._by_owner[owner] = _Expectation(deletes=set(keys), since=self._clock.monotonic())

    def creation_observed(self, owner: str, count: int = 1) -> None:
        exp = self._by_owner.get(owner)
        if exp is not None:
            exp.adds -= count

    def deletion_observed(self, owner: str, key: str) -> None:
        exp = self._by_owner.get(owner)
        if exp is not None:
            exp.deletes.discard(key)

    def forget(self, owner: str) -> None:
        self._by_owner.pop(owner, None)

    def pending(self, owner: str) -> tuple[int, int]:
        exp = self._by_owner.get(owner)
        return (exp.adds, len(exp.deletes)) if exp else (0, 0)
