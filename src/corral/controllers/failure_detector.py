"""Deciding that a node is dead from the arrival times of its heartbeats.

Two detectors share one interface. :class:`FixedTimeout` declares a node
dead when no heartbeat arrived for a fixed time. :class:`PhiAccrual`
(Hayashibara et al., 2004) learns each node's inter-arrival distribution and
stretches the timeout for a node whose heartbeats arrive irregularly (an
agent on a CPU-starved machine), never below ``min_timeout``.

The floor matters more than the adaptation: fencing (``agent/fencing.py``)
lets an agent keep its pods only for a fixed time after its last renewal, and
the control plane must not replace them sooner. So ``min_timeout`` is the
safety bound and adaptation may only lengthen it. docs/failover.md has the
measurements behind the defaults.

Arrival times are taken on the observer's monotonic clock when the renewal
is *seen*, never from the renewTime an agent writes: machines' wall clocks
may disagree by any amount, but their clock rates agree to within a bound.
Time during which the observer itself could not observe (its event loop was
starved) is forgiven with :meth:`shift`, so a slow control plane does not
declare everyone else dead.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Protocol

_NORMAL = NormalDist()


class FailureDetector(Protocol):
    def heartbeat(self, node: str, now: float) -> None:
        """A renewal from ``node`` was seen at monotonic time ``now``."""

    def timeout(self, node: str) -> float:
        """Seconds of silence after which ``node`` is declared dead."""

    def silence(self, node: str, now: float) -> float | None:
        """Seconds since the last heartbeat; None for an unknown node."""

    def expired(self, node: str, now: float) -> bool: ...

    def forget(self, node: str) -> None: ...

    def shift(self, seconds: float) -> None:
        """Move every last-heard time forward: the observer was not looking."""

    def nodes(self) -> list[str]: ...

    def knows(self, node: str) -> bool:
        """Has ``node`` ever been heard from (O(1), unlike ``nodes``)?"""


@dataclass
class _History:
    last: float
    intervals: deque[float] = field(default_factory=deque)
    dead: bool = False


class _Base:
    def __init__(self) -> None:
        self._hist: dict[str, _History] = {}

    def heartbeat(self, node: str, now: float) -> None:
        hist = self._hist.get(node)
        if hist is None:
            self._hist[node] = _History(now)
            return
        gap = now - hist.last
        # A silence that got the node declared dead is an outage, not jitter:
        # learning from it would slow every later failover of this node.
        if not hist.dead and gap > 0:
            self._record(hist, gap)
        hist.last = max(hist.last, now)
        hist.dead = False

    def _record(self, hist: _History, gap: float) -> None:
        pass

    def silence(self, node: str, now: float) -> float | None:
        hist = self._hist.get(node)
        return None if hist is None else max(0.0, now - hist.last)

    def expired(self, node: str, now: float) -> bool:
        hist = self._hist.get(node)
        if hist is None:
            return False
        if hist.dead:
            return True
        if now - hist.last > self.timeout(node):
            hist.dead = True
        return hist.dead

    def timeout(self, node: str) -> float:
        raise NotImplementedError

    def forget(self, node: str) -> None:
        self._hist.pop(node, None)

    def shift(self, seconds: float) -> None:
        if seconds <= 0:
            return
        for hist in self._hist.values():
            if not hist.dead:
                hist.last += seconds

    def nodes(self) -> list[str]:
        return list(self._hist)

    def knows(self, node: str) -> bool:
        return node in self._hist


class FixedTimeout(_Base):
    def __init__(self, timeout: float) -> None:
        if not timeout > 0:
            raise ValueError(f"timeout: must be positive, got {timeout}")
        super().__init__()
        self._timeout = timeout

    def timeout(self, node: str) -> float:
        return self._timeout


class PhiAccrual(_Base):
    """phi = -log10 P(a heartbeat arrives later than t), with inter-arrival
    times taken as normal with the window's mean and deviation (the
    deviation floored, since a perfectly regular sender would otherwise be
    declared dead a millisecond late). The node is dead once phi exceeds
    ``threshold``; with a threshold of 8 a healthy node is wrongly suspected
    about once in 10^8 heartbeats under the model."""

    def __init__(
        self,
        *,
        threshold: float = 8.0,
        min_timeout: float = 3.0,
        max_timeout: float = 10.0,
        window: int = 200,
        min_std: float = 0.1,
        min_samples: int = 5,
    ) -> None:
        if not 0 < min_timeout <= max_timeout:
            raise ValueError(
                f"min_timeout/max_timeout: need 0 < min <= max, got {min_timeout}, {max_timeout}"
            )
        if not 0 < threshold < 16:
            raise ValueError(f"threshold: must be in (0, 16), got {threshold}")
        super().__init__()
        self.threshold = threshold
        self.min_timeout = min_timeout
        self.max_timeout = max_timeout
        self.window = window
        self.min_std = min_std
        self.min_samples = min_samples
        self._z = _NORMAL.inv_cdf(1.0 - 10.0 ** (-threshold))

    def _record(self, hist: _History, gap: float) -> None:
        hist.intervals.append(gap)
        while len(hist.intervals) > self.window:
            hist.intervals.popleft()

    def phi(self, node: str, now: float) -> float:
        hist = self._hist.get(node)
        if hist is None or len(hist.intervals) < self.min_samples:
            return 0.0
        mean, std = self._stats(hist)
        survival = 1.0 - _NORMAL.cdf((now - hist.last - mean) / std)
        return math.inf if survival <= 0 else -math.log10(survival)

    def _stats(self, hist: _History) -> tuple[float, float]:
        n = len(hist.intervals)
        mean = sum(hist.intervals) / n
        var = sum((x - mean) ** 2 for x in hist.intervals) / n
        return mean, max(math.sqrt(var), self.min_std)

    def timeout(self, node: str) -> float:
        hist = self._hist.get(node)
        if hist is None or len(hist.intervals) < self.min_samples:
            return self.min_timeout
        mean, std = self._stats(hist)
        return min(self.max_timeout, max(self.min_timeout, mean + self._z * std))


def make_detector(kind: str, min_timeout: float, max_timeout: float) -> FailureDetector:
    """The detector named by configuration (``phi`` or ``fixed``)."""
    if kind == "fixed":
        return FixedTimeout(min_timeout)
    if kind == "phi":
        return PhiAccrual(min_timeout=min_timeout, max_timeout=max_timeout)
    raise ValueError(f"detector: expected 'phi' or 'fixed', got {kind!r}")
