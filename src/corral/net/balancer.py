"""Choosing a backend for a new connection: round-robin or least-connections,
with optional ClientIP session affinity.

A :class:`Backend` object lives as long as connections use it, even after
it left the set: counting a removed backend's connections down must not
touch a newcomer at the same address, and a drained backend is simply one
that :meth:`Balancer.pick` no longer returns.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

ALGORITHMS = ("round-robin", "least-connections")


@dataclass(eq=False)
class Backend:
    ip: str
    port: int
    active: int = 0
    total: int = field(default=0)

    @property
    def address(self) -> tuple[str, int]:
        return (self.ip, self.port)


class Balancer:
    def __init__(self, algorithm: str = "round-robin", *, affinity_seconds: float | None = None,
                 now: Callable[[], float]) -> None:
        if algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm: {algorithm!r} is not one of {', '.join(ALGORITHMS)}")
        self.algorithm = algorithm
        self.affinity_seconds = affinity_seconds
        self._now = now
        self._backends: dict[tuple[str, int], Backend] = {}
        self._order: list[Backend] = []
        self._counter = itertools.count()
        self._affinity: dict[str, tuple[tuple[str, int], float]] = {}

    @property
    def backends(self) -> list[Backend]:
        return list(self._order)

    def set_backends(self, addresses: Iterable[tuple[str, int]]) -> None:
        """Replace the set; a backend that stays keeps its object (and counts)."""
        wanted = list(dict.fromkeys(addresses))
        self._backends = {a: self._backends.get(a) or Backend(*a) for a in wanted}
        self._order = [self._backends[a] for a in sorted(wanted)]

    def set_affinity(self, seconds: float | None) -> None:
        self.affinity_seconds = seconds
        if seconds is None:
            self._affinity.clear()

    def pick(self, client_ip: str = "", exclude: Iterable[Backend] = ()) -> Backend | None:
        skip = {id(b) for b in exclude}
        choices = [b for b in self._order if id(b) not in skip]
        if not choices:
            return None
        sticky = self._sticky(client_ip, skip)
        if sticky is not None:
            chosen = sticky
        elif self.algorithm == "least-connections":
            start = next(self._counter) % len(choices)
            rotated = choices[start:] + choices[:start]  # ties go round, not to the first
            chosen = min(rotated, key=lambda b: b.active)
        else:
            chosen = choices[next(self._counter) % len(choices)]
        if self.affinity_seconds is not None and client_ip:
            self._affinity[client_ip] = (chosen.address, self._now() + self.affinity_seconds)
        return chosen

    def _sticky(self, client_ip: str, skip: set[int]) -> Backend | None:
        if self.affinity_seconds is None or not client_ip:
            return None
        entry = self._affinity.get(client_ip)
        if entry is None:
            return None
        address, expires = entry
        backend = self._backends.get(address)
        if expires < self._now() or backend is None or id(backend) in skip:
            del self._affinity[client_ip]
            return None
        return backend
