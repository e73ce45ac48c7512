"""How long each step of a pod's start took on this node.

The mission asks corral to show what the system is doing, and issue #4 (a
100-pod burst, p99 create->Running 250 ms) needs to know where the time
goes. A pod's start is a row of marks on CLOCK_MONOTONIC (system wide, so
the container supervisor, another process, can add its own):

    seen        the agent first saw the pod bound here (its worker made)
    slot        its first sync got a sync slot (pod_worker._sync_once)
    volumes     its volumes were first ready
    network     its first container start had the pod's network
    env         ... and its environment and mounts built
    laid_out    the process runtime wrote the container's spec and state files
    shim_began  its supervisor (forked by the launcher) began its work
    isolated    ... with the cgroup and the pod's namespaces ready
    spawned     ... and the container's process spawned
    started     the runtime's start call returned to the agent
    running     the first status write saying Running completed

Each mark is kept once, the first time it is reached; a mark a runtime does
not report (Docker has no supervisor marks) is absent, and a step lasts
from the previous present mark to its own. Marks are dict stores (a burst
of pods passes here ~10 times each): no I/O and no logging, and the
histograms are fed once per pod, when its Running status is written.

Served by the agent (agent/server.py): ``/metrics`` in the Prometheus text
format (the kubelet's metric naming), ``/debug/pod-starts`` the last
:data:`RING` pods' timelines as JSON, in ms from ``seen``, for exact
percentiles (``seenMonotonic``, the seen mark in CLOCK_MONOTONIC seconds,
lets a client on the same machine, bench/startup.py, place them against
its own clock). A timeline is kept as its marks and put into that form
when read; the histograms are this module's own (:class:`_Histogram`),
exposed through a collector of the agent's registry: prometheus_client's
observe (a lock, a loop over the buckets) was most of the tracker's
~80 µs per pod, on the loop that serves the API.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from itertools import accumulate
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import HistogramMetricFamily
from prometheus_client.utils import floatToGoString

from corral.clock import format_microtime

POD_MARKS = ("seen", "slot", "volumes", "network", "env", "laid_out", "shim_began", "isolated",
             "spawned", "started", "running")
CONTAINER_MARKS = ("began", "network", "env", "laid_out", "shim_began", "isolated", "spawned",
                   "started")
RUNTIME_MARKS = {"laid_out": "laid_out", "began": "shim_began", "isolated": "isolated",
                 "spawned": "spawned"}
"""The supervisor's report key -> the mark it stands for."""
RING = 500
ACTIVE_MAX = 20_000
"""Pods being tracked at once; past it the oldest are dropped (a pod that
never runs, e.g. a crash loop, is otherwise forgotten only when it goes)."""
POD_BUCKETS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0,
               60.0, 120.0)
STEP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0)


class _Pod:
    __slots__ = ("namespace", "name", "uid", "wall", "marks", "runtime", "containers")

    def __init__(self, namespace: str, name: str, uid: str, at: float, wall: float) -> None:
        self.namespace, self.name, self.uid, self.wall = namespace, name, uid, wall
        self.marks: dict[str, float] = {"seen": at}
        self.runtime = ""
        self.containers: list[tuple[str, dict[str, float]]] = []


class ContainerStart:
    """The marks of one container start; made by :meth:`StartSteps.container`,
    finished by :meth:`done` once the runtime returned a handle (a failed
    start is simply dropped)."""

    __slots__ = ("_steps", "uid", "key", "marks")

    def __init__(self, steps: StartSteps, uid: str, key: str) -> None:
        self._steps, self.uid, self.key = steps, uid, key
        self.marks: dict[str, float] = {"began": steps.now()}

    def mark(self, name: str) -> None:
        self.marks[name] = self._steps.now()

    def done(self, handle: Any) -> None:
        """``handle``: the runtime's ContainerHandle; its ``start_steps`` (the
        supervisor's monotonic marks), when the runtime passes them on, are
        added if they fall inside this start."""
        now = self._steps.now()
        reported = getattr(handle, "start_steps", None)
        if isinstance(reported, Mapping):
            began = self.marks["began"]
            for key, mark in RUNTIME_MARKS.items():
                value = reported.get(key)
                if isinstance(value, int | float) and began <= value <= now:
                    self.marks[mark] = float(value)
        self.marks["started"] = now
        self._steps._container_done(self, str(getattr(handle, "runtime", "") or "unknown"))


class _Series:
    __slots__ = ("counts", "total")

    def __init__(self, buckets: int) -> None:
        self.counts = [0] * (buckets + 1)  # per bucket, the last one +Inf (not cumulative)
        self.total = 0.0


class _Histogram:
    """A Prometheus histogram whose observe is one bisect and two adds
    (the loop is its only writer: no lock); exposed by :meth:`family` in
    the form prometheus_client gives its own."""

    def __init__(self, name: str, documentation: str, labelnames: tuple[str, ...],
                 buckets: tuple[float, ...]) -> None:
        self.name, self.documentation, self.labelnames = name, documentation, labelnames
        self.bounds = buckets
        self.series: dict[tuple[str, ...], _Series] = {}

    def observe(self, labels: tuple[str, ...], value: float) -> None:
        series = self.series.get(labels)
        if series is None:
            series = self.series[labels] = _Series(len(self.bounds))
        series.counts[bisect_left(self.bounds, value)] += 1  # le: a value on a bound counts in it
        series.total += value

    def family(self) -> HistogramMetricFamily:
        family = HistogramMetricFamily(self.name, self.documentation, labels=list(self.labelnames))
        les = [*map(floatToGoString, self.bounds), "+Inf"]
        for labels, series in self.series.items():
            family.add_metric(list(labels), list(zip(les, accumulate(series.counts), strict=True)),
                              series.total)
        return family


class _Collector:
    def __init__(self, histograms: list[_Histogram]) -> None:
        self.histograms = histograms

    def collect(self) -> Iterator[HistogramMetricFamily]:
        for hist in self.histograms:
            yield hist.family()


class StartSteps:
    """The tracker: one per agent, shared by its pod workers and server."""

    def __init__(self, *, ring: int = RING, active_max: int = ACTIVE_MAX,
                 now: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        self.now = now
        self._wall = wall
        self._active: OrderedDict[str, _Pod] = OrderedDict()
        self._active_max = active_max
        self.recent: deque[_Pod] = deque(maxlen=ring)
        """Finished starts, oldest first; :meth:`timelines` gives them as JSON."""
        self._pod_total = _Histogram(
            "corral_agent_pod_start_duration_seconds",
            "Duration from the agent first seeing a pod bound to its node to the status write "
            "that first reports it Running completing.", ("runtime",), POD_BUCKETS)
        self._pod_step = _Histogram(
            "corral_agent_pod_start_step_duration_seconds",
            "Duration of each step of a pod's start, from the previous step's end to its own "
            "(see the step names in corral.agent.startsteps).", ("step", "runtime"), STEP_BUCKETS)
        self._container_total = _Histogram(
            "corral_agent_container_start_duration_seconds",
            "Duration of every container start (restarts included), from the pod worker deciding "
            "to start it to the runtime's start call returning.", ("runtime",), STEP_BUCKETS)
        self._container_step = _Histogram(
            "corral_agent_container_start_step_duration_seconds",
            "Duration of each step of every container start.", ("step", "runtime"), STEP_BUCKETS)
        self.registry = CollectorRegistry(auto_describe=True)
        """The agent's own: never the process-global one (tests run many agents in one process)."""
        self.registry.register(_Collector(  # type: ignore[arg-type]
            [self._pod_total, self._pod_step, self._container_total, self._container_step]))

    # -- marks -------------------------------------------------------------

    def seen(self, uid: str, namespace: str, name: str) -> None:
        if uid in self._active:
            return
        self._active[uid] = _Pod(namespace, name, uid, self.now(), self._wall())
        if len(self._active) > self._active_max:
            self._active.popitem(last=False)

    def mark(self, uid: str, name: str) -> None:
        pod = self._active.get(uid)
        if pod is not None and name not in pod.marks:
            pod.marks[name] = self.now()

    def container(self, uid: str, key: str) -> ContainerStart:
        return ContainerStart(self, uid, key)

    def _container_done(self, start: ContainerStart, runtime: str) -> None:
        marks = start.marks
        self._container_total.observe((runtime,), marks["started"] - marks["began"])
        _observe_steps(self._container_step, marks, CONTAINER_MARKS, runtime)
        pod = self._active.get(start.uid)
        if pod is None:
            return
        pod.runtime = pod.runtime or runtime
        pod.containers.append((start.key, marks))
        for name in CONTAINER_MARKS[1:]:
            if name in marks and name not in pod.marks:
                pod.marks[name] = marks[name]

    def status_written(self, uid: str, phase: Any) -> None:
        """A status write completed: the first one saying Running ends the
        pod's start (Kubernetes' pod_start_duration stops there too). A pod
        with no container started by this agent (adopted after a restart)
        is only forgotten, as is one that finished without being seen Running."""
        if phase not in ("Running", "Succeeded", "Failed"):
            return
        pod = self._active.pop(uid, None)
        if pod is not None and phase == "Running" and "started" in pod.marks:
            pod.marks["running"] = self.now()
            self._finish(pod)

    def forget(self, uid: str) -> None:
        self._active.pop(uid, None)

    # -- results -----------------------------------------------------------

    def _finish(self, pod: _Pod) -> None:
        marks = pod.marks
        pod.runtime = pod.runtime or "unknown"
        self._pod_total.observe((pod.runtime,), marks["running"] - marks["seen"])
        _observe_steps(self._pod_step, marks, POD_MARKS, pod.runtime)
        self.recent.append(pod)

    def timelines(self, namespace: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """The recent pod starts, oldest first."""
        pods = [p for p in self.recent if namespace is None or p.namespace == namespace]
        return [_timeline(p) for p in (pods[-limit:] if limit else pods)]

    def metrics_text(self) -> bytes:
        return generate_latest(self.registry)

    @property
    def tracking(self) -> int:
        return len(self._active)


def _observe_steps(hist: _Histogram, marks: Mapping[str, float], order: tuple[str, ...], runtime: str) -> None:
    prev: float | None = None
    for name in order:
        at = marks.get(name)
        if at is None:
            continue
        if prev is not None:
            hist.observe((name, runtime), max(at - prev, 0.0))
        prev = at


def _timeline(pod: _Pod) -> dict[str, Any]:
    marks = pod.marks
    seen = marks["seen"]
    return {
        "namespace": pod.namespace,
        "name": pod.name,
        "uid": pod.uid,
        "runtime": pod.runtime,
        "seenAt": format_microtime(datetime.fromtimestamp(pod.wall, UTC)),
        "seenMonotonic": round(seen, 6),
        "totalMs": _ms(marks["running"] - seen),
        "marksMs": {m: _ms(marks[m] - seen) for m in POD_MARKS if m in marks},
        "containers": [
            {"name": key.removeprefix("init:"), "init": key.startswith("init:"),
             "marksMs": {m: _ms(cm[m] - seen) for m in CONTAINER_MARKS if m in cm}}
            for key, cm in pod.containers
        ],
    }


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)
