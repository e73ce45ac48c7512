"""The HorizontalPodAutoscaler's arithmetic, as pure functions.

Kubernetes' rules: per metric a proposal ``ceil(pods * current / target)``
unless the ratio is within the 10% tolerance; the largest proposal wins;
then the behaviour: stabilization (scale down to the highest recommendation
of the window, up to the lowest) and rate policies (Pods or Percent per
period, selectPolicy Max/Min/Disabled), then min/max replicas.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from corral.controllers.objects import Obj
from corral.resources.quantity import bytes_value, cpu_millis

TOLERANCE = 0.1
DEFAULT_UP = {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
              "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15},
                           {"type": "Percent", "value": 100, "periodSeconds": 15}]}
DEFAULT_DOWN = {"stabilizationWindowSeconds": 300, "selectPolicy": "Max",
                "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]}


def resource_amount(name: str, text: object) -> float:
    """cpu in millicores, memory in bytes."""
    return float(cpu_millis(str(text))) if name == "cpu" else float(bytes_value(str(text)))


def pod_requests(pod: Obj, name: str) -> float | None:
    total = 0.0
    for c in (pod.get("spec") or {}).get("containers") or []:
        value = ((c.get("resources") or {}).get("requests") or {}).get(name)
        if value is None:
            return None  # utilization is undefined without a request on every container
        total += resource_amount(name, value)
    return total


@dataclass
class Proposal:
    replicas: int
    status: Obj  # a v2 MetricStatus
    reason: str


def propose(metric: Obj, current: int, pods: list[Obj], usage: dict[str, dict[str, float]]) -> Proposal | None:
    """One metric's replica proposal from per-pod usage (pod name → {cpu, memory}).
    None if the metric cannot be computed (no usage, no requests)."""
    if metric.get("type") != "Resource":
        return None
    resource = metric.get("resource") or {}
    name, target = resource.get("name", ""), resource.get("target") or {}
    measured = [p for p in pods if (p.get("metadata") or {}).get("name") in usage]
    if not measured:
        return None
    used = sum(usage[p["metadata"]["name"]].get(name, 0.0) for p in measured)
    count = len(measured)
    if target.get("type") == "Utilization":
        requests = [pod_requests(p, name) for p in measured]
        if any(r is None or r <= 0 for r in requests):
            return None
        requested = sum(r for r in requests if r)
        utilization = int(round(used * 100 / requested))
        ratio = utilization / float(target.get("averageUtilization") or 1)
        current_value = {"averageUtilization": utilization,
                         "averageValue": _format(name, used / count)}
        why = f"{name} resource utilization (percentage of request)"
    else:
        wanted = resource_amount(name, target.get("averageValue") or target.get("value") or 0)
        ratio = (used / count) / wanted if wanted else 0.0
        current_value = {"averageValue": _format(name, used / count)}
        why = f"{name} resource"
    if abs(ratio - 1.0) <= TOLERANCE:
        replicas = current
    else:
        replicas = math.ceil(ratio * count)
    direction = "above" if replicas > current else "below"
    return Proposal(replicas, {"type": "Resource", "resource": {"name": name, "current": current_value}},
                    f"{why} {direction} target")


def _format(name: str, value: float) -> str:
    return f"{int(value)}m" if name == "cpu" else str(int(value))


@dataclass
class History:
    """What one autoscaler remembers between syncs (kept in memory, as in Kubernetes)."""

    recommendations: list[tuple[datetime, int]] = field(default_factory=list)
    scale_events: list[tuple[datetime, int]] = field(default_factory=list)  # (time, change)


def rules(hpa: Obj, direction: str) -> Obj:
    behavior = ((hpa.get("spec") or {}).get("behavior") or {}).get(direction) or {}
    defaults = DEFAULT_UP if direction == "scaleUp" else DEFAULT_DOWN
    return {**defaults, **behavior}


def stabilize(hpa: Obj, history: History, recommendation: int, current: int, now: datetime) -> int:
    up_window = int(rules(hpa, "scaleUp").get("stabilizationWindowSeconds") or 0)
    down_window = int(rules(hpa, "scaleDown").get("stabilizationWindowSeconds") or 0)
    keep = max(up_window, down_window)
    history.recommendations = [(t, r) for t, r in history.recommendations
                               if (now - t).total_seconds() <= keep]
    history.recommendations.append((now, recommendation))
    up_floor = min((r for t, r in history.recommendations
                    if (now - t).total_seconds() <= up_window), default=recommendation)
    down_ceiling = max((r for t, r in history.recommendations
                        if (now - t).total_seconds() <= down_window), default=recommendation)
    result = current
    if result < up_floor:
        result = up_floor
    if result > down_ceiling:
        result = down_ceiling
    return result


def _limit(hpa: Obj, history: History, current: int, now: datetime, direction: str) -> int | None:
    rule = rules(hpa, direction)
    select = rule.get("selectPolicy", "Max")
    if select == "Disabled":
        return current
    limits = []
    for policy in rule.get("policies") or []:
        period = int(policy.get("periodSeconds") or 15)
        since = now - timedelta(seconds=period)
        moved = sum(c for t, c in history.scale_events if t > since and (c > 0) == (direction == "scaleUp"))
        start = current - moved
        value = int(policy.get("value") or 0)
        if direction == "scaleUp":
            limits.append(start + value if policy.get("type") == "Pods" else math.ceil(start * (1 + value / 100)))
        else:
            limits.append(start - value if policy.get("type") == "Pods" else math.ceil(start * (1 - value / 100)))
    if not limits:
        return None
    pick = max if (select == "Max") == (direction == "scaleUp") else min
    return pick(limits)


def desired_replicas(hpa: Obj, history: History, proposal: int, current: int, now: datetime) -> tuple[int, str]:
    """Apply stabilization, rate limits and bounds; returns (replicas, limiting reason or "")."""
    spec = hpa.get("spec") or {}
    low, high = int(spec.get("minReplicas") or 1), int(spec.get("maxReplicas") or 1)
    wanted = stabilize(hpa, history, proposal, current, now)
    reason = ""
    if wanted > current:
        cap = _limit(hpa, history, current, now, "scaleUp")
        if cap is not None and wanted > cap:
            wanted, reason = max(cap, current), "ScaleUpLimit"
    elif wanted < current:
        floor = _limit(hpa, history, current, now, "scaleDown")
        if floor is not None and wanted < floor:
            wanted, reason = min(floor, current), "ScaleDownLimit"
    if wanted > high:
        wanted, reason = high, "TooManyReplicas"
    if wanted < low:
        wanted, reason = low, "TooFewReplicas"
    return wanted, reason


def record_scale(history: History, now: datetime, change: int, keep_seconds: int = 1800) -> None:
    history.scale_events = [(t, c) for t, c in history.scale_events
                            if (now - t).total_seconds() <= keep_seconds]
    history.scale_events.append((now, change))
