"""Rollout arithmetic of the Deployment controller, as pure functions.

Given a Deployment and its ReplicaSets these decide the next replica count of
each ReplicaSet (rolling update, proportional scaling), the status and its
conditions. The controller module only reads caches and writes the answers,
so every rule here is unit-tested on hand-made dicts.
"""

from __future__ import annotations

import copy
import math
from datetime import datetime, timedelta
from typing import Any

import orjson

from corral.clock import format_timestamp, parse_timestamp
from corral.controllers.objects import Obj, int_field, meta

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
DEFAULT_PROGRESS_DEADLINE = 600
DEFAULT_HISTORY_LIMIT = 10
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


# -- template hashing ----------------------------------------------------


def template_hash(template: Obj, collision_count: int | None = None) -> str:
    """A stable short digest of a pod template (FNV-1a 32 over canonical JSON,
    spelled in Kubernetes' vowel-free alphabet so it never forms words)."""
    data = orjson.dumps(template, option=orjson.OPT_SORT_KEYS)
    if collision_count:
        data += str(collision_count).encode()
    h = 0x811C9DC5
    for byte in data:
        h ^= byte
        h = (h * 0x01000193) & 0xFFFFFFFF
    return "".join(_SAFE_ALPHABET[int(c, 16) % len(_SAFE_ALPHABET)] for c in f"{h:x}")


def strip_hash(template: Obj) -> Obj:
    out = copy.deepcopy(template or {})
    labels = (out.get("metadata") or {}).get("labels")
    if labels:
        labels.pop(HASH_LABEL, None)
    return out


def same_template(rs: Obj, deployment: Obj) -> bool:
    """Equal ignoring the hash label: how the new ReplicaSet is recognised,
    so an undo (template patched back) finds the old ReplicaSet again."""
    a = strip_hash(_template(rs))
    b = strip_hash(_template(deployment))
    for t in (a, b):
        md = t.setdefault("metadata", {})
        if not md.get("labels"):
            md.pop("labels", None)
        if not md.get("annotations"):
            md.pop("annotations", None)
        if not md:
            t.pop("metadata")
    return a == b


def _template(obj: Obj) -> Obj:
    return (obj.get("spec") or {}).get("template") or {}


# -- small accessors -------------------------------------------------------


def spec_replicas(obj: Obj | None) -> int:
    return int_field(obj or {}, "spec", "replicas", default=1)


def status_int(obj: Obj | None, name: str) -> int:
    return int_field(obj or {}, "status", name)


def revision(rs: Obj) -> int:
    try:
        return int((meta(rs).get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


def max_revision(rses: list[Obj]) -> int:
    return max((revision(r) for r in rses), default=0)


def is_rolling(d: Obj) -> bool:
    return ((d.get("spec") or {}).get("strategy") or {}).get("type", "RollingUpdate") != "Recreate"


def by_creation(rses: list[Obj]) -> list[Obj]:
    return sorted(rses, key=lambda r: (meta(r).get("creationTimestamp") or "", meta(r)["name"]))


# -- surge / unavailable ---------------------------------------------------


def scaled_value(value: Any, total: int, round_up: bool) -> int:
    """An IntOrString: an int, or a percentage of total rounded as asked."""
    if value is None:
        value = "25%"
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = str(value)
    if text.endswith("%"):
        try:
            pct = int(text[:-1])
        except ValueError as exc:
            raise ValueError(f"invalid value for IntOrString: {text!r}") from exc
        exact = pct * total / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    try:
        return int(text)
    except ValueError as exc:
        raise ValueError(f"invalid value for IntOrString: {text!r}") from exc


def fenceposts(d: Obj) -> tuple[int, int]:
    """(maxSurge, maxUnavailable); both zero would deadlock, so unavailable
    becomes 1 as in Kubernetes. Recreate has neither."""
    if not is_rolling(d):
        return 0, 0
    ru = ((d.get("spec") or {}).get("strategy") or {}).get("rollingUpdate") or {}
    desired = spec_replicas(d)
    surge = scaled_value(ru.get("maxSurge", "25%"), desired, round_up=True)
    unavailable = scaled_value(ru.get("maxUnavailable", "25%"), desired, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, min(unavailable, desired)


def max_unavailable(d: Obj) -> int:
    if not is_rolling(d) or spec_replicas(d) == 0:
        return 0
    return fenceposts(d)[1]


def replicas_annotations(d: Obj) -> dict[str, str]:
    return {
        DESIRED_REPLICAS: str(spec_replicas(d)),
        MAX_REPLICAS: str(spec_replicas(d) + fenceposts(d)[0]),
    }


# -- rolling update ----------------------------------------------------------


def new_rs_target(d: Obj, all_rses: list[Obj], new_rs: Obj) -> int:
    """How far the new ReplicaSet may grow right now."""
    desired = spec_replicas(d)
    if not is_rolling(d):
        return desired
    current = spec_replicas(new_rs)
    if current >= desired:
        return desired
    surge, _ = fenceposts(d)
    total = sum(spec_replicas(r) for r in all_rses)
    room = desired + surge - total
    if room <= 0:
        return current
    return current + min(room, desired - current)


def old_rs_targets(d: Obj, all_rses: list[Obj], old_rses: list[Obj], new_rs: Obj | None) -> dict[str, int]:
    """Scale-down of old ReplicaSets allowed by maxUnavailable: first the
    replicas that are not available anyway, then available ones down to the
    deployment's minimum availability. Returns {rs name: new replicas}."""
    if sum(spec_replicas(r) for r in old_rses) == 0:
        return {}
    min_available = spec_replicas(d) - max_unavailable(d)
    new_unavailable = spec_replicas(new_rs) - status_int(new_rs, "availableReplicas") if new_rs else 0
    budget = sum(spec_replicas(r) for r in all_rses) - min_available - new_unavailable
    if budget <= 0:
        return {}
    targets: dict[str, int] = {}
    cleaned = 0
    for rs in by_creation(old_rses):
        if cleaned >= budget:
            break
        size = spec_replicas(rs)
        unhealthy = size - status_int(rs, "availableReplicas")
        if size == 0 or unhealthy <= 0:
            continue
        down = min(budget - cleaned, unhealthy)
        targets[meta(rs)["name"]] = size - down
        cleaned += down

    def size_of(rs: Obj) -> int:
        return targets.get(meta(rs)["name"], spec_replicas(rs))

    available = sum(status_int(r, "availableReplicas") for r in all_rses)
    remaining = available - min_available
    if remaining <= 0:
        return targets
    scaled = 0
    for rs in by_creation(old_rses):
        if scaled >= remaining:
            break
        size = size_of(rs)
        if size == 0:
            continue
        down = min(size, remaining - scaled)
        targets[meta(rs)["name"]] = size - down
        scaled += down
    return targets


# -- proportional scaling ---------------------------------------------------


def _fraction(rs: Obj, d: Obj) -> int:
    desired = spec_replicas(d)
    if desired == 0:
        return -spec_replicas(rs)
    allowed = desired + fenceposts(d)[0]
    try:
        annotated = int((meta(rs).get("annotations") or {})[MAX_REPLICAS])
    except (KeyError, ValueError):
        annotated = status_int(d, "replicas")
    if annotated <= 0:
        return 0
    exact = spec_replicas(rs) * allowed / annotated
    return int(math.floor(exact + 0.5)) - spec_replicas(rs)


def proportional_targets(d: Obj, new_rs: Obj | None, old_rses: list[Obj]) -> dict[str, int]:
    """Targets when the Deployment itself was scaled (kubectl scale) while
    several ReplicaSets hold replicas: each grows or shrinks in proportion to
    its size, leftovers to the largest."""
    active = [r for r in ([new_rs] if new_rs else []) + old_rses if spec_replicas(r) > 0]
    desired = spec_replicas(d)
    if len(active) == 0:
        return {meta(new_rs)["name"]: desired} if new_rs else {}
    if len(active) == 1:
        return {meta(active[0])["name"]: desired}
    if new_rs is not None and is_saturated(d, new_rs):
        return {meta(r)["name"]: 0 for r in old_rses if spec_replicas(r) > 0}
    if not is_rolling(d):
        return {}
    allowed = desired + fenceposts(d)[0] if desired > 0 else 0
    to_add = allowed - sum(spec_replicas(r) for r in active)
    newer_first = to_add > 0
    ordered = sorted(
        active,
        key=lambda r: (-spec_replicas(r), meta(r).get("creationTimestamp") or "", meta(r)["name"]),
    )
    if newer_first:
        ordered = sorted(
            active,
            key=lambda r: (spec_replicas(r), meta(r).get("creationTimestamp") or "", meta(r)["name"]),
            reverse=True,
        )
    sizes: dict[str, int] = {}
    added = 0
    for rs in ordered:
        proportion = 0
        if to_add != 0 and to_add != added:
            fraction = _fraction(rs, d)
            allowed_left = to_add - added
            proportion = min(fraction, allowed_left) if to_add > 0 else max(fraction, allowed_left)
        sizes[meta(rs)["name"]] = spec_replicas(rs) + proportion
        added += proportion
    if to_add != added and ordered:
        first = meta(ordered[0])["name"]
        sizes[first] = max(0, sizes[first] + to_add - added)
    return sizes


def is_saturated(d: Obj, rs: Obj) -> bool:
    desired = (meta(rs).get("annotations") or {}).get(DESIRED_REPLICAS)
    return (
        spec_replicas(rs) == spec_replicas(d)
        and desired == str(spec_replicas(d))
        and status_int(rs, "availableReplicas") == spec_replicas(d)
    )


def is_scaling_event(d: Obj, rses: list[Obj]) -> bool:
    """The Deployment's replicas changed since the active ReplicaSets were
    last annotated: scale proportionally instead of rolling."""
    for rs in rses:
        if spec_replicas(rs) == 0:
            continue
        desired = (meta(rs).get("annotations") or {}).get(DESIRED_REPLICAS)
        if desired is not None and desired != str(spec_replicas(d)):
            return True
    return False


def history_to_delete(d: Obj, old_rses: list[Obj]) -> list[Obj]:
    limit = int_field(d, "spec", "revisionHistoryLimit", default=DEFAULT_HISTORY_LIMIT)
    idle = [
        r
        for r in old_rses
        if spec_replicas(r) == 0
        and status_int(r, "replicas") == 0
        and not meta(r).get("deletionTimestamp")
    ]
    excess = len(idle) - limit
    if excess <= 0:
        return []
    return sorted(idle, key=lambda r: (revision(r), meta(r).get("creationTimestamp") or ""))[:excess]


# -- status ------------------------------------------------------------------


def calculate_status(d: Obj, new_rs: Obj | None, all_rses: list[Obj], now: datetime) -> Obj:
    replicas = sum(status_int(r, "replicas") for r in all_rses)
    available = sum(status_int(r, "availableReplicas") for r in all_rses)
    old = d.get("status") or {}
    status: Obj = {
        "observedGeneration": int_field(d, "metadata", "generation", default=1),
        "replicas": replicas,
        "updatedReplicas": status_int(new_rs, "replicas") if new_rs else 0,
        "readyReplicas": sum(status_int(r, "readyReplicas") for r in all_rses),
        "availableReplicas": available,
        "unavailableReplicas": max(0, sum(spec_replicas(r) for r in all_rses) - available),
        "conditions": copy.deepcopy(old.get("conditions") or []),
    }
    if "collisionCount" in old:
        status["collisionCount"] = old["collisionCount"]
    if available >= spec_replicas(d) - max_unavailable(d):
        cond = ("True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
    else:
        cond = ("False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability.")
    set_condition(status, "Available", *cond, now)
    return status


def get_condition(status: Obj, type_: str) -> Obj | None:
    for cond in status.get("conditions") or []:
        if cond.get("type") == type_:
            return cond
    return None


def set_condition(
    status: Obj, type_: str, value: str, reason: str, message: str, now: datetime,
    *, touch: bool = False,
) -> None:
    """Same status and reason: nothing changes unless ``touch`` (a Progressing
    condition that keeps progressing bumps lastUpdateTime only). A changed
    status moves lastTransitionTime."""
    stamp = format_timestamp(now)
    conds = status.setdefault("conditions", [])
    current = get_condition(status, type_)
    if current is not None and current.get("status") == value and current.get("reason") == reason:
        if touch:
            current["lastUpdateTime"] = stamp
            current["message"] = message
        return
    new = {
        "type": type_,
        "status": value,
        "lastUpdateTime": stamp,
        "lastTransitionTime": stamp,
        "reason": reason,
        "message": message,
    }
    if current is not None and current.get("status") == value:
        new["lastTransitionTime"] = current.get("lastTransitionTime", stamp)
    if current is not None:
        conds.remove(current)
    conds.append(new)


def is_complete(d: Obj, status: Obj) -> bool:
    desired = spec_replicas(d)
    return (
        status.get("updatedReplicas") == desired
        and status.get("replicas") == desired
        and status.get("availableReplicas") == desired
        and status.get("observedGeneration", 0) >= int_field(d, "metadata", "generation", default=1)
    )


def is_progressing(d: Obj, new: Obj) -> bool:
    old = d.get("status") or {}
    old_old = int(old.get("replicas", 0)) - int(old.get("updatedReplicas", 0))
    new_old = new["replicas"] - new["updatedReplicas"]
    return (
        new["updatedReplicas"] > int(old.get("updatedReplicas", 0))
        or new_old < old_old
        or new["readyReplicas"] > int(old.get("readyReplicas", 0))
        or new["availableReplicas"] > int(old.get("availableReplicas", 0))
    )


def progress_deadline(d: Obj) -> int | None:
    spec = d.get("spec") or {}
    value = spec.get("progressDeadlineSeconds", DEFAULT_PROGRESS_DEADLINE)
    return value if isinstance(value, int) and value < 2**31 - 1 else None


def timed_out(d: Obj, status: Obj, now: datetime) -> bool:
    deadline = progress_deadline(d)
    cond = get_condition(status, "Progressing")
    if deadline is None or cond is None:
        return False
    if cond.get("reason") == "NewReplicaSetAvailable":
        return False
    if cond.get("reason") == "ProgressDeadlineExceeded":
        return True
    since = parse_timestamp(cond.get("lastUpdateTime") or format_timestamp(now))
    return since + timedelta(seconds=deadline) < now


def rollout_status(d: Obj, new_rs: Obj | None, all_rses: list[Obj], now: datetime) -> Obj:
    """calculate_status plus the Progressing condition `kubectl rollout
    status` watches for success (NewReplicaSetAvailable) or failure
    (ProgressDeadlineExceeded)."""
    status = calculate_status(d, new_rs, all_rses, now)
    if progress_deadline(d) is None or (d.get("spec") or {}).get("paused"):
        return status
    name = meta(new_rs)["name"] if new_rs else ""
    if is_complete(d, status) and new_rs is not None:
        set_condition(status, "Progressing", "True", "NewReplicaSetAvailable",
                      f'ReplicaSet "{name}" has successfully progressed.', now)
    elif is_progressing(d, status):
        msg = f'ReplicaSet "{name}" is progressing.' if new_rs else "Deployment is progressing."
        set_condition(status, "Progressing", "True", "ReplicaSetUpdated", msg, now, touch=True)
    elif timed_out(d, status, now):
        msg = f'ReplicaSet "{name}" has timed out progressing.' if new_rs else (
            "Deployment has timed out progressing.")
        set_condition(status, "Progressing", "False", "ProgressDeadlineExceeded", msg, now)
    return status


def requeue_for_deadline(d: Obj, status: Obj, now: datetime) -> float | None:
    """Seconds until this rollout would time out, so a stuck rollout is
    marked failed even when no event arrives."""
    deadline = progress_deadline(d)
    cond = get_condition(status, "Progressing")
    if deadline is None or cond is None or is_complete(d, status):
        return None
    if cond.get("reason") in ("NewReplicaSetAvailable", "ProgressDeadlineExceeded"):
        return None
    since = parse_timestamp(cond.get("lastUpdateTime") or format_timestamp(now))
    left = (since + timedelta(seconds=deadline) - now).total_seconds()
    return max(left, 0.0) + 1.0
