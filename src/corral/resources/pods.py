"""The v1 Pod kind: admission defaults, the update rules, and the STATUS column."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from corral.resources import validation as v
from corral.resources.podspec import compute_qos_class, default_pod_spec, validate_pod_spec
from corral.resources.schema import Schema
from corral.resources.tables import (
    AGE_COLUMN,
    NAME_COLUMN,
    age_since,
    as_int,
    as_list,
    dicts,
    get_path,
    parse_time,
)
from corral.resources.types import Column, FieldCause, Obj, ResourceType

# What the DefaultTolerationSeconds admission plugin adds. Kubernetes waits
# 300 s because its node may come back with the pods still running; a corral
# node that is declared unreachable has already fenced (killed) its pods, so
# waiting would only lengthen the outage: corral's default is 0. A pod that
# should wait sets its own tolerationSeconds (docs/failover.md).
DEFAULT_TOLERATION_SECONDS = 0
DEFAULT_TOLERATIONS = (
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
     "tolerationSeconds": DEFAULT_TOLERATION_SECONDS},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
     "tolerationSeconds": DEFAULT_TOLERATION_SECONDS},
)

UPDATE_FORBIDDEN = (
    "pod updates may not change fields other than `spec.containers[*].image`,"
    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` "
    "(only additions to existing tolerations),`spec.terminationGracePeriodSeconds` "
    "(allow it to be set to 1 if it was previously negative)"
)


def default_pod(obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    default_pod_spec(spec)
    spec.setdefault("enableServiceLinks", True)
    # The ServiceAccount and Priority admission plugins' part of defaulting.
    spec.setdefault("serviceAccountName", spec.get("serviceAccount") or "default")
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    if not spec.get("priorityClassName"):
        spec.setdefault("priority", 0)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    tolerations = spec.setdefault("tolerations", [])
    if isinstance(tolerations, list):
        # An empty key tolerates every taint already (Kubernetes counts it too).
        keys = {t.get("key") or "" for t in dicts(tolerations)
                if isinstance(t.get("key") or "", str) and t.get("effect") in (None, "", "NoExecute")}
        for tol in DEFAULT_TOLERATIONS:
            if tol["key"] not in keys and "" not in keys:
                tolerations.append(dict(tol))
    status = obj.setdefault("status", {})
    if isinstance(status, dict):
        status.setdefault("phase", "Pending")
        status.setdefault("qosClass", compute_qos_class(spec))


def _masked_spec(new: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
    """``new`` with the fields Kubernetes lets an update change replaced by ``old``'s."""
    masked = copy.deepcopy(new)
    for key in ("containers", "initContainers"):
        new_list, old_list = as_list(masked.get(key)), as_list(old.get(key))
        if len(new_list) == len(old_list):
            for nc, oc in zip(new_list, old_list, strict=True):
                if isinstance(nc, dict) and isinstance(oc, dict) and "image" in oc:
                    nc["image"] = oc["image"]
    new_deadline, old_deadline = masked.get("activeDeadlineSeconds"), old.get("activeDeadlineSeconds")
    if new_deadline is not None and (old_deadline is None or new_deadline <= old_deadline):
        _set_like(masked, old, "activeDeadlineSeconds")
    old_tols = as_list(old.get("tolerations"))
    if all(t in as_list(masked.get("tolerations")) for t in old_tols):
        _set_like(masked, old, "tolerations")
    old_grace = old.get("terminationGracePeriodSeconds")
    if isinstance(old_grace, int) and old_grace < 0 and masked.get("terminationGracePeriodSeconds") == 1:
        _set_like(masked, old, "terminationGracePeriodSeconds")
    old_gates = as_list(old.get("schedulingGates"))
    if all(g in old_gates for g in as_list(masked.get("schedulingGates"))):
        _set_like(masked, old, "schedulingGates")
    return masked


def _set_like(target: dict[str, Any], source: dict[str, Any], key: str) -> None:
    if key in source:
        target[key] = copy.deepcopy(source[key])
    else:
        target.pop(key, None)


def validate_pod(new: Obj, old: Obj | None) -> list[FieldCause]:
    if old is not None and new.get("spec") == old.get("spec"):
        # Unchanged (every status write: the agent's and the hollow nodes'):
        # it was judged when stored, and Kubernetes likewise does not judge
        # an unchanged field again on update. A comparison is far cheaper.
        return []
    causes = validate_pod_spec(new.get("spec"), "spec", is_pod=True)
    if old is None or not isinstance(new.get("spec"), dict):
        return causes
    old_spec = old.get("spec") if isinstance(old.get("spec"), dict) else {}
    masked = _masked_spec(new["spec"], old_spec)
    if masked != old_spec:
        changed = sorted(k for k in set(masked) | set(old_spec) if masked.get(k) != old_spec.get(k))
        detail = UPDATE_FORBIDDEN + "\n  changed: " + ", ".join(f"spec.{k}" for k in changed)
        causes.append(v.forbidden("spec", detail))
    return causes


# --- the Table --------------------------------------------------------------------


def _is_restartable_init(container: Any) -> bool:
    return isinstance(container, dict) and container.get("restartPolicy") == "Always"


def _later(a: datetime | None, b: Any) -> datetime | None:
    t = parse_time(b)
    if t is None:
        return a
    return t if a is None or t > a else a


def _init_status(pod: Obj, reason: str) -> tuple[str, bool, int, int, datetime | None, int]:
    """Walk init containers as kubectl does: (reason, initializing, restarts,
    sidecar restarts, last sidecar restart, ready sidecars)."""
    spec_inits = {str(c.get("name")): c for c in dicts(get_path(pod, "spec", "initContainers"))}
    total_inits = len(spec_inits)
    restarts = sidecar_restarts = ready = 0
    last_sidecar: datetime | None = None
    initializing = False
    for i, cs in enumerate(dicts(get_path(pod, "status", "initContainerStatuses"))):
        count = as_int(cs.get("restartCount"))
        restarts += count
        sidecar = _is_restartable_init(spec_inits.get(str(cs.get("name"))))
        if sidecar:
            sidecar_restarts += count
            last_sidecar = _later(last_sidecar, get_path(cs, "lastState", "terminated", "finishedAt"))
        terminated, waiting = _state(cs, "terminated"), _state(cs, "waiting")
        if terminated is not None and terminated.get("exitCode") == 0:
            continue
        if sidecar and cs.get("started"):
            ready += 1 if cs.get("ready") else 0
            continue
        initializing = True
        if terminated is not None:
            if terminated.get("reason"):
                reason = f"Init:{terminated['reason']}"
            elif terminated.get("signal"):
                reason = f"Init:Signal:{terminated['signal']}"
            else:
                reason = f"Init:ExitCode:{terminated.get('exitCode', 0)}"
        elif waiting and waiting.get("reason") and waiting["reason"] != "PodInitializing":
            reason = f"Init:{waiting['reason']}"
        else:
            reason = f"Init:{i}/{total_inits}"
        break
    return reason, initializing, restarts, sidecar_restarts, last_sidecar, ready


def _state(status: Obj, name: str) -> dict[str, Any] | None:
    """A container state (running/waiting/terminated) when present; ``{}`` counts."""
    state = get_path(status, "state", name)
    return state if isinstance(state, dict) else None


def _has_condition(pod: Obj, ctype: str) -> bool:
    return any(c.get("type") == ctype and c.get("status") == "True"
               for c in dicts(get_path(pod, "status", "conditions")))


def pod_summary(pod: Obj, now: datetime) -> tuple[str, str, str]:
    """(READY, STATUS, RESTARTS) exactly as ``kubectl get pods`` computes them."""
    phase = str(get_path(pod, "status", "phase", default=""))
    reason = str(get_path(pod, "status", "reason", default="")) or phase
    for cond in dicts(get_path(pod, "status", "conditions")):
        if cond.get("type") == "PodScheduled" and cond.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"
    total = len(as_list(get_path(pod, "spec", "containers")))
    total += sum(1 for c in as_list(get_path(pod, "spec", "initContainers"))
                 if _is_restartable_init(c))
    reason, initializing, restarts, sidecar_restarts, last, ready = _init_status(pod, reason)
    last_restart: datetime | None = None
    if not initializing or _has_condition(pod, "Initialized"):
        restarts, last_restart = sidecar_restarts, last
        has_running = False
        for cs in reversed(dicts(get_path(pod, "status", "containerStatuses"))):
            restarts += as_int(cs.get("restartCount"))
            last_restart = _later(last_restart, get_path(cs, "lastState", "terminated", "finishedAt"))
            terminated, waiting = _state(cs, "terminated"), _state(cs, "waiting")
            if waiting and waiting.get("reason"):
                reason = str(waiting["reason"])
            elif terminated and terminated.get("reason"):
                reason = str(terminated["reason"])
            elif terminated is not None:
                signal = terminated.get("signal")
                reason = f"Signal:{signal}" if signal else f"ExitCode:{terminated.get('exitCode', 0)}"
            elif cs.get("ready") and get_path(cs, "state", "running") is not None:
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            reason = "Running" if _has_condition(pod, "Ready") else "NotReady"
    deleting = get_path(pod, "metadata", "deletionTimestamp")
    if deleting and get_path(pod, "status", "reason") == "NodeLost":
        reason = "Unknown"
    elif deleting and phase not in ("Succeeded", "Failed"):
        reason = "Terminating"
    restarts_text = str(restarts)
    if restarts and last_restart is not None:
        restarts_text = f"{restarts} ({age_since(last_restart.isoformat(), now)} ago)"
    return f"{ready}/{total}", reason, restarts_text


def _pod_ip(pod: Obj, now: datetime) -> str:
    ips = dicts(get_path(pod, "status", "podIPs"))
    ip = get_path(ips, 0, "ip", default="") or get_path(pod, "status", "podIP", default="")
    return str(ip) or "<none>"


def _readiness_gates(pod: Obj, now: datetime) -> str:
    gates = dicts(get_path(pod, "spec", "readinessGates"))
    if not gates:
        return "<none>"
    conditions = {str(c.get("type")): c.get("status")
                  for c in reversed(dicts(get_path(pod, "status", "conditions")))}
    true = sum(1 for g in gates if conditions.get(str(g.get("conditionType"))) == "True")
    return f"{true}/{len(gates)}"


COLUMNS = (
    NAME_COLUMN,
    Column("Ready", "string", lambda o, n: pod_summary(o, n)[0],
           "The aggregate readiness state of this pod for accepting traffic."),
    Column("Status", "string", lambda o, n: pod_summary(o, n)[1],
           "The aggregate status of the containers in this pod."),
    Column("Restarts", "string", lambda o, n: pod_summary(o, n)[2],
           "The number of times the containers in this pod have been restarted and when the "
           "last container in this pod has restarted."),
    AGE_COLUMN,
    Column("IP", "string", _pod_ip, "IP address allocated to the pod.", priority=1),
    Column("Node", "string",
           lambda o, n: str(get_path(o, "spec", "nodeName", default="")) or "<none>",
           "Name of the Node this pod is assigned to.", priority=1),
    Column("Nominated Node", "string",
           lambda o, n: str(get_path(o, "status", "nominatedNodeName", default="")) or "<none>",
           "Name of the node nominated to run this pod after preemption.", priority=1),
    Column("Readiness Gates", "string", _readiness_gates,
           "Readiness gates of the pod that are true, out of all.", priority=1),
)


def pod_fields(pod: Obj) -> dict[str, str]:
    # Plain dict lookups: every pod event in a watch fan-out computes these
    # (and those of its previous version) to find the watchers it concerns,
    # and get_path's generic walk cost ~20 us a call there.
    spec, status = pod.get("spec"), pod.get("status")
    spec = spec if isinstance(spec, dict) else {}
    status = status if isinstance(status, dict) else {}

    def s(part: dict[str, Any], key: str) -> str:
        value = part.get(key)
        return "" if value is None else str(value)

    return {
        "spec.nodeName": s(spec, "nodeName"),
        "spec.restartPolicy": s(spec, "restartPolicy"),
        "spec.schedulerName": s(spec, "schedulerName"),
        "spec.serviceAccountName": s(spec, "serviceAccountName"),
        "spec.hostNetwork": "true" if spec.get("hostNetwork") is True else "false",
        "status.phase": s(status, "phase"),
        "status.podIP": s(status, "podIP"),
        "status.nominatedNodeName": s(status, "nominatedNodeName"),
    }


def pod_type(schema: Schema) -> ResourceType:
    return ResourceType(
        group="", version="v1", kind="Pod", plural="pods", singular="pod", namespaced=True,
        schema=schema, short_names=("po",), categories=("all",),
        subresources=("status", "binding", "log", "exec", "portforward", "eviction"),
        columns=COLUMNS, defaulter=default_pod, validator=validate_pod,
        field_selectors=pod_fields, has_status=True,
    )
