"""Resource fit: does the node have room for the pod's requests?

Room is allocatable minus what bound and assumed non-terminal pods request.
Pod count is a resource too (status.allocatable.pods)."""

from __future__ import annotations

from corral.scheduler.nodeinfo import CPU, MEMORY, PODS, NodeInfo, PodInfo


class ResourcesFit:
    name = "NodeResourcesFit"
    resolvable_by_preemption = True

    def check(self, pod: PodInfo, node: NodeInfo) -> str | None:
        if PODS in node.allocatable and node.requested.get(PODS, 0) + 1 > node.allocatable[PODS]:
            return "Too many pods"
        for resource in (CPU, MEMORY, *sorted(set(pod.requests) - {CPU, MEMORY})):
            want = pod.requests.get(resource, 0)
            if want <= 0:
                continue
            free = node.allocatable.get(resource, 0) - node.requested.get(resource, 0)
            if want > free:
                return f"Insufficient {resource}"
        return None

    def explain(self, reason: str, count: int) -> str:
        return f"{count} {reason}"
