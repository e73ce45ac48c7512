"""Placement the pod asks for by name or by node labels."""

from __future__ import annotations

from corral.scheduler.nodeinfo import NodeInfo, PodInfo


class NodeName:
    name = "NodeName"
    resolvable_by_preemption = False

    def check(self, pod: PodInfo, node: NodeInfo) -> str | None:
        wanted = (pod.pod.get("spec") or {}).get("nodeName")
        if wanted and wanted != node.name:
            return "node(s) didn't match the requested node name"
        return None

    def explain(self, reason: str, count: int) -> str:
        return f"{count} {reason}"


class NodeSelector:
    name = "NodeAffinity"
    resolvable_by_preemption = False

    def check(self, pod: PodInfo, node: NodeInfo) -> str | None:
        selector = (pod.pod.get("spec") or {}).get("nodeSelector") or {}
        labels = (node.node.get("metadata") or {}).get("labels") or {}
        if any(labels.get(k) != v for k, v in selector.items()):
            return "node(s) didn't match Pod's node affinity/selector"
        return None

    def explain(self, reason: str, count: int) -> str:
        return f"{count} {reason}"
