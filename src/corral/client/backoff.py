"""Bounded, jittered exponential backoff.

Jitter spreads retries of many clients that failed together (a restarted API
server) so they do not come back in lockstep; the cap keeps the worst wait
bounded, as every retry in corral must be.
"""

from __future__ import annotations

import random


def jittered(delay: float, jitter: float, rng: random.Random | None = None) -> float:
    """``delay`` stretched by a random factor in ``[1, 1 + jitter)``."""
    r = (rng or random).random()
    return delay * (1.0 + jitter * r)


def exponential(base: float, attempt: int, cap: float) -> float:
    """``base * 2**attempt`` capped at ``cap``, safe for any attempt count."""
    return min(cap, base * 2.0 ** min(attempt, 62))


class Backoff:
    """Successive waits ``initial, 2*initial, ...`` up to ``maximum``, each
    jittered, never above ``maximum``. ``reset()`` after a success."""

    def __init__(
        self,
        initial: float = 0.2,
        maximum: float = 30.0,
        *,
        jitter: float = 0.2,
        rng: random.Random | None = None,
    ) -> None:
        if initial <= 0 or maximum < initial:
            raise ValueError(f"backoff: need 0 < initial <= maximum, got {initial}, {maximum}")
        self.initial = initial
        self.maximum = maximum
        self.jitter = jitter
        self.attempts = 0
        self._rng = rng

    def next(self) -> float:
        delay = exponential(self.initial, self.attempts, self.maximum)
        self.attempts += 1
        return min(self.maximum, jittered(delay, self.jitter, self._rng))

    def reset(self) -> None:
        self.attempts = 0
