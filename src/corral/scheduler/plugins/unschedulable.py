"""Nodes that take no new pods: not Ready, cordoned, or tainted NoSchedule.

A cordoned node (spec.unschedulable, or its taint
node.kubernetes.io/unschedulable:NoSchedule) still takes a pod that tolerates
that taint, as in Kubernetes."""

from __future__ import annotations

from typing import Any

from corral.scheduler.nodeinfo import NodeInfo, PodInfo

UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"


def tolerates(tolerations: list[dict[str, Any]], taint: dict[str, Any]) -> bool:
    for tol in tolerations:
        effect = tol.get("effect")
        if effect and effect != taint.get("effect"):
            continue
        op = tol.get("operator") or "Equal"
        key = tol.get("key")
        if op == "Exists":
            if not key or key == taint.get("key"):
                return True
        elif key == taint.get("key") and (tol.get("value") or "") == (taint.get("value") or ""):
            return True
    return False


def _tolerations(pod: PodInfo) -> list[dict[str, Any]]:
    return (pod.pod.get("spec") or {}).get("tolerations") or []


class NodeReady:
    name = "NodeReady"
    resolvable_by_preemption = False

    def check(self, pod: PodInfo, node: NodeInfo) -> str | None:
        for cond in (node.node.get("status") or {}).get("conditions") or []:
            if cond.get("type") == "Ready":
                return None if cond.get("status") == "True" else "node(s) were not ready"
        return "node(s) were not ready"

    def explain(self, reason: str, count: int) -> str:
        return f"{count} {reason}"


class NodeUnschedulable:
    name = "NodeUnschedulable"
    resolvable_by_preemption = False

    def check(self, pod: PodInfo, node: NodeInfo) -> str | None:
        if not (node.node.get("spec") or {}).get("unschedulable"):
            return None
        taint = {"key": UNSCHEDULABLE_TAINT, "effect": "NoSchedule"}
        return None if tolerates(_tolerations(pod), taint) else "node(s) were unschedulable"

    def explain(self, reason: str, count: int) -> str:
        return f"{count} {reason}"


class TaintToleration:
    name = "TaintToleration"
    resolvable_by_preemption = False

    def check(self, pod: PodInfo, node: NodeInfo) -> str | None:
        tolerations = _tolerations(pod)
        for taint in (node.node.get("spec") or {}).get("taints") or []:
            if taint.get("effect") not in ("NoSchedule", "NoExecute"):
                continue
            if not tolerates(tolerations, taint):
                if taint.get("key") == UNSCHEDULABLE_TAINT:
                    return "node(s) were unschedulable"
                return f"node(s) had untolerated taint {{{taint.get('key')}: {taint.get('value') or ''}}}"
        return None

    def explain(self, reason: str, count: int) -> str:
        return f"{count} {reason}"
