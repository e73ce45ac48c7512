"""The timing contract between an agent and the control plane.

An agent renews its Lease every ``renew_interval``. If no renewal has
succeeded for ``fence_timeout`` (counted from when the last successful
renewal was *sent*) it kills its containers. The control plane declares the
node dead no sooner than ``grace`` after it last *saw* a renewal, and only
then starts replacements. Nothing assumes synchronised wall clocks; only
that two machines' monotonic clocks run at rates within ``MAX_DRIFT`` of
each other. The two never overlap when

    fence_timeout * (1 + MAX_DRIFT) + KILL_BOUND  <  grace * (1 - MAX_DRIFT)

(the renewal is seen no earlier than it was sent; the agent's fence fires at
most ``fence_timeout * (1 + drift)`` real seconds after the send; its
containers are gone ``KILL_BOUND`` later; the control plane waits at least
``grace * (1 - drift)`` real seconds after seeing it). docs/failover.md walks
through the numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

# Quartz oscillators are within 100 ppm and NTP slews at most 500 ppm; 1 %
# is twenty times that, so a machine with a badly broken clock is covered.
MAX_DRIFT = 0.01
# From the fence deadline to every container gone: the watchdog polls every
# WATCHDOG_POLL seconds, SIGKILL of a process group takes milliseconds; the
# rest is scheduling slack on a loaded machine.
WATCHDOG_POLL = 0.05
KILL_BOUND = 0.3

# Annotation by which an agent tells the control plane its fence timeout, so
# the node lifecycle controller can refuse to evict sooner than is safe and
# knows that a silent node's containers are gone (force deletion is safe).
FENCE_ANNOTATION = "corral.dev/fence-timeout-seconds"


@dataclass(frozen=True)
class FailoverTiming:
    renew_interval: float = 0.5
    fence_timeout: float = 1.8
    grace: float = 2.5

    def __post_init__(self) -> None:
        if not 0 < self.renew_interval < self.fence_timeout:
            raise ValueError(
                f"renew_interval: must be positive and below fence_timeout "
                f"({self.fence_timeout}), got {self.renew_interval}"
            )
        if self.grace < safe_grace(self.fence_timeout):
            raise ValueError(
                f"grace: {self.grace}s is too short for a {self.fence_timeout}s fence; "
                f"needs at least {safe_grace(self.fence_timeout):.2f}s"
            )


def safe_grace(fence_timeout: float) -> float:
    """The shortest control-plane grace that cannot overlap an agent fencing
    itself after ``fence_timeout``."""
    return (fence_timeout * (1 + MAX_DRIFT) + KILL_BOUND) / (1 - MAX_DRIFT)


DEFAULT_TIMING = FailoverTiming()
