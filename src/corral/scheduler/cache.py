"""The scheduler's view of each node: bound pods plus assumed ones.

A pod is *assumed* onto its node the moment we choose it, before the binding
is written. Without that a burst of pods would all see the same empty node
until the informer delivers the bindings. An assumed pod becomes an ordinary
bound pod when the informer shows it with spec.nodeName; a failed binding
forgets it.
"""

from __future__ import annotations

from corral.scheduler.nodeinfo import NodeInfo, Obj, PodInfo


def _key(pod: Obj) -> str:
    md = pod.get("metadata") or {}
    return f"{md.get('namespace', '')}/{md.get('name', '')}"


def _holds_resources(pod: Obj) -> bool:
    phase = (pod.get("status") or {}).get("phase")
    return bool((pod.get("spec") or {}).get("nodeName")) and phase not in ("Succeeded", "Failed")


class SchedulerCache:
    def __init__(self) -> None:
        self.nodes: dict[str, NodeInfo] = {}
        self._pod_node: dict[str, str] = {}
        self._assumed: set[str] = set()
        # Pods placed on nodes we have not seen yet, kept so they count once the node appears.
        self._orphans: dict[str, tuple[str, PodInfo]] = {}

    def set_node(self, node: Obj) -> None:
        name = (node.get("metadata") or {}).get("name", "")
        fresh = NodeInfo.of(node)
        old = self.nodes.get(name)
        for info in (old.pods.values() if old else []):
            fresh.add(info)
        for key, (node_name, info) in list(self._orphans.items()):
            if node_name == name:
                fresh.add(info)
                del self._orphans[key]
        self.nodes[name] = fresh

    def remove_node(self, node: Obj) -> None:
        name = (node.get("metadata") or {}).get("name", "")
        info = self.nodes.pop(name, None)
        for key, pod in (info.pods.items() if info else []):
            self._orphans[key] = (name, pod)

    def is_assumed(self, key: str) -> bool:
        return key in self._assumed

    def assume(self, pod: PodInfo, node: str) -> None:
        self._place(pod.key, node, pod)
        self._assumed.add(pod.key)

    def forget(self, key: str) -> None:
        if key in self._assumed:
            self._assumed.discard(key)
            self._unplace(key)

    def update_pod(self, pod: Obj) -> None:
        key = _key(pod)
        if not _holds_resources(pod):
            if key not in self._assumed:
                self._unplace(key)
            return
        self._assumed.discard(key)
        self._place(key, pod["spec"]["nodeName"], PodInfo.of(pod))

    def remove_pod(self, pod: Obj) -> None:
        key = _key(pod)
        self._assumed.discard(key)
        self._unplace(key)

    def _place(self, key: str, node: str, info: PodInfo) -> None:
        self._unplace(key)
        self._pod_node[key] = node
        target = self.nodes.get(node)
        if target is None:
            self._orphans[key] = (node, info)
        else:
            target.add(info)

    def _unplace(self, key: str) -> None:
        node = self._pod_node.pop(key, None)
        self._orphans.pop(key, None)
        if node is not None and node in self.nodes:
            self.nodes[node].remove(key)
