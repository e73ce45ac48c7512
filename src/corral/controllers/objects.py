"""Small facts about object dicts that several controllers share: label
selectors, owner references, pod readiness.

Kept free of I/O so the rules can be unit-tested on hand-made dicts.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from corral.clock import parse_timestamp

Obj = dict[str, Any]


def meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def namespace_of(obj: Obj) -> str:
    return meta(obj).get("namespace") or ""


def key_of(obj: Obj) -> str:
    ns = namespace_of(obj)
    return f"{ns}/{meta(obj).get('name', '')}" if ns else meta(obj).get("name", "")


def split_key(key: str) -> tuple[str | None, str]:
    ns, sep, name = key.partition("/")
    return (ns, name) if sep else (None, ns)


def is_deleting(obj: Obj) -> bool:
    return bool(meta(obj).get("deletionTimestamp"))


def matches_selector(selector: Obj | None, labels: dict[str, str] | None) -> bool:
    """A metav1.LabelSelector. An empty or missing selector selects nothing,
    as for workload controllers (a Deployment must never adopt every pod)."""
    if not selector:
        return False
    labels = labels or {}
    match_labels = selector.get("matchLabels") or {}
    expressions = selector.get("matchExpressions") or []
    if not match_labels and not expressions:
        return False
    for key, value in match_labels.items():
        if labels.get(key) != value:
            return False
    return all(_expression_matches(expr, labels) for expr in expressions)


def _expression_matches(expr: Obj, labels: dict[str, str]) -> bool:
    key = expr.get("key", "")
    op = expr.get("operator", "")
    values = expr.get("values") or []
    if op == "In":
        return key in labels and labels[key] in values
    if op == "NotIn":
        return key not in labels or labels[key] not in values
    if op == "Exists":
        return key in labels
    if op == "DoesNotExist":
        return key not in labels
    return False


def selector_string(selector: Obj | None) -> str:
    """A label selector in the query-string form ``k=v,k2 in (a,b)``."""
    parts: list[str] = []
    for key, value in sorted(((selector or {}).get("matchLabels") or {}).items()):
        parts.append(f"{key}={value}")
    for expr in (selector or {}).get("matchExpressions") or []:
        op, key = expr.get("operator"), expr.get("key")
        values = ",".join(expr.get("values") or [])
        parts.append(
            {"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})",
             "Exists": f"{key}", "DoesNotExist": f"!{key}"}.get(op, "")
        )
    return ",".join(p for p in parts if p)


def controller_ref(obj: Obj) -> Obj | None:
    for ref in meta(obj).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref
    return None


def make_controller_ref(owner: Obj, api_version: str, kind: str) -> Obj:
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": meta(owner)["name"],
        "uid": meta(owner)["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def condition(obj: Obj, type_: str) -> Obj | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return cond
    return None


def is_pod_active(pod: Obj) -> bool:
    """Counts towards a ReplicaSet: not finished and not being deleted."""
    phase = (pod.get("status") or {}).get("phase")
    return phase not in ("Succeeded", "Failed") and not is_deleting(pod)


def is_pod_ready(pod: Obj) -> bool:
    cond = condition(pod, "Ready")
    return bool(cond and cond.get("status") == "True")


def ready_since(pod: Obj) -> datetime | None:
    cond = condition(pod, "Ready")
    if not cond or cond.get("status") != "True" or not cond.get("lastTransitionTime"):
        return None
    return parse_timestamp(cond["lastTransitionTime"])


def is_pod_available(pod: Obj, min_ready_seconds: int, now: datetime) -> bool:
    """Ready for at least minReadySeconds (the Ready condition's transition time)."""
    if not is_pod_ready(pod):
        return False
    if min_ready_seconds <= 0:
        return True
    since = ready_since(pod)
    return since is not None and (now - since).total_seconds() >= min_ready_seconds


def int_field(obj: Obj, *path: str, default: int = 0) -> int:
    cur: Any = obj
    for part in path:
        if not isinstance(cur, dict):
            return default
        cur = cur.get(part)
    return cur if isinstance(cur, int) and not isinstance(cur, bool) else default
