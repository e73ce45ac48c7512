"""CPU and memory of containers and of the node, for ``kubectl top``.

A container's figures come from its runtime when the runtime can say
(``stats``: its cgroup); otherwise from its process tree in /proc, found by
the marker variable the agent puts in every container's environment (a
process's environment is readable in /proc/PID/environ, and children
inherit it, so the whole tree is found without help from the runtime).
CPU is cumulative; the rate ``kubectl top`` shows is the difference between
two samples divided by the time between them, as metrics-server computes it.

The agent answers ``/stats/summary`` in the shape of the kubelet's Summary
API (the parts metrics need), and the API server turns that into
``metrics.k8s.io`` PodMetrics and NodeMetrics.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from corral.clock import format_timestamp

MARKER = "CORRAL_CONTAINER"
"""``<pod uid>/<container name>`` in every container's environment."""
MIN_WINDOW = 0.25
MAX_WINDOW = 60.0
_TICK_NS = 1_000_000_000 // (os.sysconf("SC_CLK_TCK") or 100)
_PAGE = os.sysconf("SC_PAGE_SIZE") or 4096


def marker_value(pod_uid: str, container: str) -> str:
    return f"{pod_uid}/{container}"


@dataclass(frozen=True)
class Sample:
    cpu_ns: int
    """Cumulative CPU time."""
    memory_bytes: int
    """Working set."""
    at: float
    """time.monotonic() of the reading."""


def _proc_usage(pid: str) -> tuple[int, int] | None:
    """(cpu ns, resident bytes) of one process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
        statm = Path(f"/proc/{pid}/statm").read_text().split()
    except OSError:
        return None
    fields = raw[raw.rindex(b")") + 2 :].split()
    try:
        ticks = sum(int(f) for f in fields[11:15])  # utime, stime, reaped children's
        rss_pages = int(statm[1])
    except (IndexError, ValueError):
        return None
    return ticks * _TICK_NS, rss_pages * _PAGE


def processes_by_marker() -> dict[str, list[str]]:
    """Marker value -> pids carrying it (one pass over /proc)."""
    needle = MARKER.encode() + b"="
    found: dict[str, list[str]] = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        for entry in environ.split(b"\0"):
            if entry.startswith(needle):
                value = entry[len(needle) :].decode("utf-8", "replace")
                found.setdefault(value, []).append(pid)
                break
    return found


def tree_sample(pids: Iterable[str]) -> Sample:
    cpu = mem = 0
    for pid in pids:
        usage = _proc_usage(pid)
        if usage is not None:
            cpu += usage[0]
            mem += usage[1]
    return Sample(cpu, mem, time.monotonic())


def node_sample() -> Sample:
    """The whole machine: non-idle CPU time and total minus available memory."""
    cpu = 0
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
        values = [int(v) for v in first[1:]]
        idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
        cpu = (sum(values[:8]) - idle) * _TICK_NS
    except (OSError, IndexError, ValueError):
        pass
    mem = 0
    try:
        info = {}
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, rest = line.partition(":")
            info[key] = int(rest.split()[0]) * 1024
        mem = info.get("MemTotal", 0) - info.get("MemAvailable", info.get("MemFree", 0))
    except (OSError, ValueError, IndexError):
        pass
    return Sample(cpu, max(mem, 0), time.monotonic())


@dataclass(frozen=True)
class ContainerRef:
    pod_namespace: str
    pod_name: str
    pod_uid: str
    container: str


SampleSource = Callable[[ContainerRef], Awaitable[Sample | None]]
"""A runtime's own reading of a container (its cgroup), if it has one."""


class StatsCollector:
    """Keeps the previous sample of everything so each request can turn
    cumulative CPU into a rate over the window since the last request."""

    def __init__(self, node_name: str) -> None:
        self.node_name = node_name
        self._previous: dict[str, Sample] = {}

    async def summary(
        self, containers: list[ContainerRef], runtime_sample: SampleSource | None = None
    ) -> dict[str, Any]:
        """The Summary document; samples twice (a short window) when there
        is no recent previous sample to compare with."""
        first = await self._sample_all(containers, runtime_sample)
        if not self._have_window(first):
            await asyncio.sleep(MIN_WINDOW)
            self._previous.update(first)
            first = await self._sample_all(containers, runtime_sample)
        rates = {key: self._rate(key, sample) for key, sample in first.items()}
        self._previous = dict(first)
        return self._document(containers, first, rates)

    def _have_window(self, samples: dict[str, Sample]) -> bool:
        prev = self._previous.get("node")
        if prev is None:
            return False
        age = samples["node"].at - prev.at
        return MIN_WINDOW <= age <= MAX_WINDOW

    def _rate(self, key: str, sample: Sample) -> tuple[int, float] | None:
        """(nanocores, window seconds) against the previous sample."""
        prev = self._previous.get(key)
        if prev is None or sample.at <= prev.at:
            return None
        window = sample.at - prev.at
        return max(0, int((sample.cpu_ns - prev.cpu_ns) / window)), window

    async def _sample_all(
        self, containers: list[ContainerRef], runtime_sample: SampleSource | None
    ) -> dict[str, Sample]:
        samples = {"node": node_sample()}
        pids = processes_by_marker() if containers else {}
        for ref in containers:
            sample = await runtime_sample(ref) if runtime_sample is not None else None
            if sample is None:
                sample = tree_sample(pids.get(marker_value(ref.pod_uid, ref.container), []))
            samples[_key(ref)] = sample
        return samples

    def _document(
        self,
        containers: list[ContainerRef],
        samples: dict[str, Sample],
        rates: dict[str, tuple[int, float] | None],
    ) -> dict[str, Any]:
        now = format_timestamp(datetime.now(UTC))
        pods: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        for ref in containers:
            key = _key(ref)
            pods.setdefault((ref.pod_namespace, ref.pod_name, ref.pod_uid), []).append(
                {"name": ref.container, **_usage(samples[key], rates.get(key), now)}
            )
        return {
            "node": {"nodeName": self.node_name, **_usage(samples["node"], rates["node"], now)},
            "pods": [
                {
                    "podRef": {"namespace": ns, "name": name, "uid": uid},
                    "containers": items,
                }
                for (ns, name, uid), items in pods.items()
            ],
        }


def _key(ref: ContainerRef) -> str:
    return f"{ref.pod_uid}/{ref.container}"


def _usage(sample: Sample, rate: tuple[int, float] | None, now: str) -> dict[str, Any]:
    cpu: dict[str, Any] = {"time": now, "usageCoreNanoSeconds": sample.cpu_ns}
    if rate is not None:
        cpu["usageNanoCores"] = rate[0]
        cpu["windowSeconds"] = round(rate[1], 3)
    return {"cpu": cpu, "memory": {"time": now, "workingSetBytes": sample.memory_bytes}}
