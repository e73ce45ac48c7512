"""A container's resource limits, read once and handed to either runtime.

``resources.limits`` gives cpu (CFS quota over a 100 ms period, as the
kubelet sets it) and memory (a hard limit; swap is not allowed, so going
over means the kernel's OOM killer, reported as ``OOMKilled``). Kubernetes
has no per-container pid limit; the kubelet applies a pod-wide one from its
own configuration. Here the pod annotation ``corral.dev/pids-limit`` sets it
for each container of the pod.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from corral.resources.quantity import QuantityError, bytes_value, cpu_millis

CFS_PERIOD_US = 100_000
MIN_QUOTA_US = 1_000  # the kernel refuses less than 1 ms
PIDS_ANNOTATION = "corral.dev/pids-limit"


class LimitError(ValueError):
    """A limit that cannot be applied, naming the field."""


@dataclass(frozen=True)
class ContainerLimits:
    cpu_millis: int | None = None
    memory_bytes: int | None = None
    pids: int | None = None

    @classmethod
    def from_container(
        cls, container: dict[str, Any], pod: dict[str, Any] | None = None
    ) -> ContainerLimits:
        limits = (container.get("resources") or {}).get("limits") or {}
        if not isinstance(limits, dict):
            raise LimitError("resources.limits: must be an object")
        cpu = mem = pids = None
        try:
            if limits.get("cpu") is not None:
                cpu = cpu_millis(limits["cpu"])
                if cpu <= 0:
                    raise LimitError("resources.limits.cpu: must be greater than 0")
            if limits.get("memory") is not None:
                mem = bytes_value(limits["memory"])
                if mem <= 0:
                    raise LimitError("resources.limits.memory: must be greater than 0")
        except QuantityError as exc:
            raise LimitError(f"resources.limits: {exc}") from exc
        annotations = ((pod or {}).get("metadata") or {}).get("annotations") or {}
        raw = annotations.get(PIDS_ANNOTATION)
        if raw is not None:
            try:
                pids = int(raw)
            except (TypeError, ValueError):
                pids = 0
            if pids <= 0:
                raise LimitError(
                    f"metadata.annotations[{PIDS_ANNOTATION}]: {raw!r} must be a positive integer"
                )
        return cls(cpu, mem, pids)

    @property
    def empty(self) -> bool:
        return self.cpu_millis is None and self.memory_bytes is None and self.pids is None

    @property
    def cpu_quota_us(self) -> int | None:
        if self.cpu_millis is None:
            return None
        return max(MIN_QUOTA_US, self.cpu_millis * CFS_PERIOD_US // 1000)

    def docker_host_config(self) -> dict[str, Any]:
        """The same limits as Docker HostConfig arguments (SDK names)."""
        out: dict[str, Any] = {}
        if self.cpu_quota_us is not None:
            out.update(cpu_period=CFS_PERIOD_US, cpu_quota=self.cpu_quota_us)
        if self.memory_bytes is not None:
            out.update(mem_limit=self.memory_bytes, memswap_limit=self.memory_bytes)
        if self.pids is not None:
            out.update(pids_limit=self.pids)
        return out
