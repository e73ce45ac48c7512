"""Pod status from what the agent knows of its containers (pure functions).

Phase follows the kubelet's rules: Pending until every container has run
once, Running while any runs or will be restarted, Succeeded/Failed once all
have terminated for good. A terminal phase never goes back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from corral.clock import format_timestamp
from corral.runtime.protocol import ContainerState

TERMINAL = ("Succeeded", "Failed")


@dataclass
class ContainerView:
    """One container as the pod status shows it."""

    name: str
    image: str = ""
    state: dict[str, Any] = field(
        default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}}
    )
    last_state: dict[str, Any] = field(default_factory=dict)
    restart_count: int = 0
    container_id: str | None = None
    ready: bool | None = None
    """From the readiness probe; None: ready when running."""
    started: bool | None = None
    """From the startup probe; None: started when running."""

    @property
    def running(self) -> bool:
        return "running" in self.state

    @property
    def is_ready(self) -> bool:
        return self.running and (self.ready is None or self.ready)

    def to_status(self) -> dict[str, Any]:
        status: dict[str, Any] = {
            "name": self.name,
            "state": self.state,
            "lastState": self.last_state,
            "ready": self.is_ready,
            "started": self.running and (self.started is None or self.started),
            "restartCount": self.restart_count,
            "image": self.image,
            "imageID": "",
        }
        if self.container_id:
            status["containerID"] = self.container_id
        return status


def waiting(reason: str, message: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"reason": reason}
    if message:
        body["message"] = message
    return {"waiting": body}


def running(started_at: datetime) -> dict[str, Any]:
    return {"running": {"startedAt": format_timestamp(started_at)}}


def terminated(state: ContainerState, container_id: str | None = None) -> dict[str, Any]:
    code = state.exit_code if state.exit_code is not None else 0
    body: dict[str, Any] = {
        "exitCode": code,
        "reason": state.reason or ("Completed" if code == 0 else "Error"),
        "startedAt": format_timestamp(state.started_at),
        "finishedAt": format_timestamp(state.finished_at or state.started_at),
    }
    if state.signal:
        body["signal"] = state.signal
    if state.message:
        body["message"] = state.message
    if container_id:
        body["containerID"] = container_id
    return {"terminated": body}


def backoff_message(delay: float, container: str, pod: dict[str, Any]) -> str:
    meta = pod.get("metadata") or {}
    who = f"{meta.get('name')}_{meta.get('namespace')}({meta.get('uid')})"
    return f"back-off {int(delay)}s restarting failed container={container} pod={who}"


def pod_phase(
    restart_policy: str, views: list[ContainerView], init_views: list[ContainerView]
) -> str:
    if any(not _succeeded(v) for v in init_views):
        if restart_policy == "Never" and any(_failed(v) for v in init_views):
            return "Failed"
        return "Pending"
    waiting_ = stopped = succeeded = running_ = 0
    for view in views:
        if view.running:
            running_ += 1
        elif "terminated" in view.state:
            stopped += 1
            succeeded += _succeeded(view)
        elif "terminated" in view.last_state:
            stopped += 1  # waiting to be restarted after having run
        else:
            waiting_ += 1
    if waiting_:
        return "Pending"
    if running_:
        return "Running"
    if stopped:
        if restart_policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        return "Failed" if restart_policy == "Never" else "Running"
    return "Pending"


def _succeeded(view: ContainerView) -> bool:
    return view.state.get("terminated", {}).get("exitCode") == 0


def _failed(view: ContainerView) -> bool:
    term = view.state.get("terminated")
    return term is not None and term.get("exitCode") != 0


def pod_status(
    pod: dict[str, Any],
    views: list[ContainerView],
    init_views: list[ContainerView],
    *,
    host_ip: str,
    pod_ip: str,
    start_time: str,
    now: datetime,
) -> dict[str, Any]:
    """The full ``status`` to write for ``pod``."""
    old = pod.get("status") or {}
    spec = pod.get("spec") or {}
    phase = old.get("phase")
    if phase not in TERMINAL:
        phase = pod_phase(spec.get("restartPolicy", "Always"), views, init_views)
        deleting = (pod.get("metadata") or {}).get("deletionTimestamp")
        if deleting and views and all("terminated" in v.state for v in views):
            # A deleted pod whose containers are all stopped will not restart
            # them: it ends in a terminal phase, as the kubelet reports it.
            phase = "Succeeded" if all(_succeeded(v) for v in views) else "Failed"
    initialized = all(_succeeded(v) for v in init_views)
    ready = phase == "Running" and bool(views) and all(v.is_ready for v in views)
    unready = [v.name for v in views if not v.is_ready]
    truths = {
        "PodScheduled": (True, None),
        "Initialized": (initialized, None if initialized else "ContainersNotInitialized"),
        "ContainersReady": (ready, None if ready else "ContainersNotReady"),
        "Ready": (ready, None if ready else "ContainersNotReady"),
    }
    if phase in TERMINAL:
        truths["ContainersReady"] = (False, "PodCompleted")
        truths["Ready"] = (False, "PodCompleted")
    old_conditions = {c.get("type"): c for c in old.get("conditions") or []}
    conditions = []
    stamp = ""
    for ctype, (value, reason) in truths.items():
        text = "True" if value else "False"
        prev = old_conditions.get(ctype)
        since = prev.get("lastTransitionTime") if prev and prev.get("status") == text else None
        if not since:
            since = stamp = stamp or format_timestamp(now)
        cond: dict[str, Any] = {"type": ctype, "status": text, "lastProbeTime": None, "lastTransitionTime": since}
        if reason:
            cond["reason"] = reason
            if reason == "ContainersNotReady" and unready:
                cond["message"] = f"containers with unready status: [{' '.join(unready)}]"
        conditions.append(cond)
    status: dict[str, Any] = {
        "phase": phase,
        "conditions": conditions,
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "startTime": start_time,
        "containerStatuses": [v.to_status() for v in views],
        "qosClass": old.get("qosClass") or qos_class(spec),
    }
    if init_views:
        status["initContainerStatuses"] = [v.to_status() for v in init_views]
    return status


def qos_class(spec: dict[str, Any]) -> str:
    """Guaranteed when every container's requests equal its cpu and memory
    limits, BestEffort when nothing is set, Burstable otherwise."""
    containers = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
    any_set = False
    guaranteed = True
    for c in containers:
        res = c.get("resources") or {}
        limits, requests = res.get("limits") or {}, res.get("requests") or {}
        if limits or requests:
            any_set = True
        for kind in ("cpu", "memory"):
            if kind not in limits or requests.get(kind, limits[kind]) != limits[kind]:
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def same_status(stored: Any, status: Any) -> bool:
    """Equal but for null fields, which the server may drop (conditions'
    ``lastProbeTime: null``): a status read back equals the one written.
    Compared in place, stopping at the first difference: copying both
    without their nulls first cost ~60 µs a call, twice per pod start
    (the staged status, then the watch's echo of it)."""
    if stored == status:  # in C; a null the server dropped is the one way equal ones differ
        return True
    if isinstance(stored, dict) and isinstance(status, dict):
        for key in stored.keys() | status.keys():
            if not same_status(stored.get(key), status.get(key)):
                return False
        return True
    if isinstance(stored, list) and isinstance(status, list):
        return len(stored) == len(status) and all(map(same_status, stored, status))
    return False
