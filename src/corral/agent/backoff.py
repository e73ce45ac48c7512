"""Crash-loop backoff, as the kubelet does it.

The first restart of a failed container is immediate; each later one waits
10 s, then 20 s, 40 s... up to 5 minutes. A container that ran for 10
minutes before exiting is considered healthy again and its backoff starts
over. Times are monotonic seconds from the agent's clock (when the agent saw
the exit), so FakeClock can drive it.
"""

from __future__ import annotations

from dataclasses import dataclass

INITIAL = 10.0
MAXIMUM = 300.0
RESET_AFTER = 600.0


@dataclass
class _Entry:
    delay: float
    not_before: float


class RestartBackoff:
    def __init__(
        self, initial: float = INITIAL, maximum: float = MAXIMUM, reset_after: float = RESET_AFTER
    ) -> None:
        self.initial = initial
        self.maximum = maximum
        self.reset_after = reset_after
        self._entries: dict[str, _Entry] = {}
        self._seen: dict[str, str] = {}

    def exited(self, key: str, instance: str, now: float, ran_for: float) -> None:
        """Record that ``instance`` of ``key`` exited (or failed to start) at
        ``now``, having run ``ran_for`` seconds; idempotent per instance."""
        if self._seen.get(key) == instance:
            return
        self._seen[key] = instance
        if ran_for >= self.reset_after:
            self._entries.pop(key, None)
        entry = self._entries.get(key)
        if entry is None:
            # Not in backoff: restart now, but the next exit will wait.
            self._entries[key] = _Entry(delay=0.0, not_before=now)
            return
        entry.delay = min(self.maximum, entry.delay * 2) if entry.delay else self.initial
        entry.not_before = now + entry.delay

    def remaining(self, key: str, now: float) -> float:
        """Seconds until ``key`` may start again (0 = now)."""
        entry = self._entries.get(key)
        return max(0.0, entry.not_before - now) if entry else 0.0

    def delay(self, key: str) -> float:
        """The current backoff step, for the CrashLoopBackOff message."""
        entry = self._entries.get(key)
        return entry.delay if entry else 0.0

    def forget(self, key: str) -> None:
        self._entries.pop(key, None)
        self._seen.pop(key, None)

    def forget_prefix(self, prefix: str) -> None:
        for key in [k for k in self._entries if k.startswith(prefix)]:
            self.forget(key)
