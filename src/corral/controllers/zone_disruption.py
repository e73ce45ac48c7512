"""Mass-failure protection: when many nodes go silent at once, suspect the
observer.

A single node dying is the normal case and is handled at once. When a large
share of a zone's nodes (zone: the ``topology.kubernetes.io/zone`` label;
unlabelled nodes form one zone) is unreachable, the control plane's own
network is as likely at fault as the machines, and evicting everything would
turn a network blip into a cluster-wide restart: evictions in that zone slow
to a secondary rate. When every node in every zone is silent, evictions stop
altogether. These are Kubernetes' zone states (Normal, PartialDisruption,
FullDisruption); the thresholds are configuration.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

ZONE_LABELS = ("topology.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/zone")

NORMAL = "Normal"
PARTIAL = "PartialDisruption"
FULL = "FullDisruption"


@dataclass(frozen=True)
class DisruptionPolicy:
    unhealthy_threshold: float = 0.55  # share of a zone's nodes
    min_unhealthy: int = 3  # fewer silent nodes than this is never a disruption
    eviction_rate: float = math.inf  # nodes per second, normal zones
    secondary_rate: float = 0.1  # nodes per second, partially disrupted zones

    def __post_init__(self) -> None:
        if not 0 < self.unhealthy_threshold <= 1:
            raise ValueError(
                f"unhealthy_threshold: must be in (0, 1], got {self.unhealthy_threshold}"
            )
        if self.min_unhealthy < 1:
            raise ValueError(f"min_unhealthy: must be at least 1, got {self.min_unhealthy}")
        if not self.eviction_rate > 0:
            raise ValueError(f"eviction_rate: must be positive, got {self.eviction_rate}")
        if not self.secondary_rate >= 0:
            raise ValueError(f"secondary_rate: must not be negative, got {self.secondary_rate}")


def zone_of(labels: dict[str, str] | None) -> str:
    labels = labels or {}
    for key in ZONE_LABELS:
        if labels.get(key):
            return labels[key]
    return ""


def zone_state(total: int, unhealthy: int, policy: DisruptionPolicy) -> str:
    if total == 0 or unhealthy < policy.min_unhealthy:
        return NORMAL
    if unhealthy == total:
        return FULL
    if unhealthy / total >= policy.unhealthy_threshold:
        return PARTIAL
    return NORMAL


def zone_states(counts: dict[str, tuple[int, int]], policy: DisruptionPolicy) -> dict[str, str]:
    """Each zone's state from (total, unhealthy). A fully disrupted zone next
    to healthy zones is really gone (evict at the normal rate); only when all
    zones are fully disrupted is the observer suspect."""
    states = {z: zone_state(t, u, policy) for z, (t, u) in counts.items()}
    if states and all(s == FULL for s in states.values()):
        return states
    return {z: (NORMAL if s == FULL else s) for z, s in states.items()}


def rate_for(state: str, policy: DisruptionPolicy) -> float:
    if state == FULL:
        return 0.0
    if state == PARTIAL:
        return policy.secondary_rate
    return policy.eviction_rate


class TokenBucket:
    """At most ``rate`` admissions per second with a burst of one; the rate
    can change as the zone's state does."""

    def __init__(self, now: float) -> None:
        self._tokens = 1.0
        self._at = now

    def take(self, rate: float, now: float) -> bool:
        if rate == math.inf:
            return True
        if rate <= 0:
            return False  # paused: not even the burst
        self._tokens = min(1.0, self._tokens + max(0.0, now - self._at) * rate)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False
