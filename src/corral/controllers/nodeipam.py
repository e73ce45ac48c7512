"""Node IPAM: every Node gets a pod address range (``spec.podCIDR`` and
``spec.podCIDRs``) cut from the cluster CIDR, as kube-controller-manager's
range allocator does.

Which ranges are taken is what the Nodes say (the informer's handlers keep
an index of it, plus what this controller has just written), so a deleted
Node's range is free again as soon as its deletion reaches the cache, and a
restarted controller picks up exactly where the Nodes say. A Node that finds
no range left gets one Event and waits until a range is freed. ``podCIDR`` is immutable once set (resources/nodes.py), so a
range is never moved under a running node. One worker, so two Nodes never
get the same range in one process; the leader election keeps it to one
process.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

from corral.client.api import ApiClient
from corral.client.errors import NotFoundError
from corral.client.events import EventRecorder
from corral.client.resources import NODES
from corral.clock import Clock
from corral.controllers.base import Controller
from corral.controllers.informers import SharedInformers
from corral.controllers.objects import Obj, meta

log = logging.getLogger(__name__)

DEFAULT_CLUSTER_CIDR = "198.18.0.0/17"
"""Inside the benchmarking range 198.18.0.0/15 (RFC 2544), clear of the test
hosts (198.18.200.0/24 upwards), the pod-network service range
(198.18.160.0/19) and Docker's bridge (198.19.0.0/16 in tests)."""
DEFAULT_NODE_MASK = 24


def parse_cluster_cidr(text: str, node_mask: int = DEFAULT_NODE_MASK) -> ipaddress.IPv4Network:
    """The cluster CIDR, checked; ValueError naming the flag and the reason."""
    try:
        net = ipaddress.ip_network(text.strip(), strict=True)
    except ValueError as exc:
        raise ValueError(f"--cluster-cidr: {text!r} is not a network address/prefix ({exc})") from None
    if not isinstance(net, ipaddress.IPv4Network):
        raise ValueError(f"--cluster-cidr: {text!r}: only IPv4 ranges are supported")
    if net.prefixlen > node_mask:
        raise ValueError(
            f"--cluster-cidr: {text} is smaller than one node's range (/{node_mask})")
    return net


class NodeIpamController(Controller):
    name = "nodeipam-controller"

    def __init__(self, client: ApiClient, informers: SharedInformers, recorder: EventRecorder, *,
                 cluster_cidr: str = DEFAULT_CLUSTER_CIDR, node_mask: int = DEFAULT_NODE_MASK,
                 clock: Clock | None = None) -> None:
        super().__init__(clock=clock, workers=1)
        self.client = client
        self.recorder = recorder
        self.cluster = parse_cluster_cidr(cluster_cidr, node_mask)
        self.node_mask = node_mask
        self.nodes = informers.get(NODES)
        self.watches(self.nodes)
        # Kept by the handlers, so a reconcile costs O(ranges), not O(nodes):
        # thousands of (hollow) nodes must not make every allocation a scan.
        self._owner: dict[ipaddress.IPv4Network, str] = {}
        """Range → the Node that has it (or was just given it)."""
        self._of: dict[str, ipaddress.IPv4Network] = {}
        self._waiting: set[str] = set()
        """Nodes told there is no range left: looked at again when one is freed."""
        self.nodes.add_handler(on_add=self._node, on_update=lambda old, new: self._node(new),
                               on_delete=self._deleted)

    def _node(self, node: Obj) -> None:
        name = str(meta(node).get("name"))
        cidrs = _cidrs(node)
        if not cidrs:
            if name not in self._of:
                self.queue.add(name)
            return
        try:
            net = ipaddress.ip_network(cidrs[0], strict=False)
        except ValueError:
            return
        if isinstance(net, ipaddress.IPv4Network) and self._of.get(name) != net:
            self._release(name)
            self._owner[net], self._of[name] = name, net

    def _release(self, name: str) -> None:
        net = self._of.pop(name, None)
        if net is not None and self._owner.get(net) == name:
            del self._owner[net]

    def _deleted(self, node: Obj) -> None:
        name = str(meta(node).get("name"))
        self._waiting.discard(name)
        if name in self._of:
            self._release(name)
            for waiting in sorted(self._waiting):  # a range is free: the next in line gets it
                self.queue.add(waiting)

    def next_free(self) -> ipaddress.IPv4Network | None:
        odd = [n for n in self._owner if n.prefixlen != self.node_mask]
        for candidate in self.cluster.subnets(new_prefix=self.node_mask):
            if candidate in self._owner or any(candidate.overlaps(o) for o in odd):
                continue
            return candidate
        return None

    async def reconcile(self, key: str) -> float | None:
        node = self.nodes.cache.get(key)
        if node is None or _cidrs(node) or key in self._of:
            self._waiting.discard(key)
            return None
        cidr = self.next_free()
        if cidr is None:
            if key not in self._waiting:
                self._waiting.add(key)
                self.recorder.record(node, "Warning", "CIDRNotAvailable",
                                     f"Node {key} status is now: CIDRNotAvailable (cluster CIDR "
                                     f"{self.cluster} has no free /{self.node_mask} left)")
            return None
        patch = {"spec": {"podCIDR": str(cidr), "podCIDRs": [str(cidr)]}}
        try:
            await self.client.patch(NODES, key, patch)
        except NotFoundError:
            return None
        self._waiting.discard(key)
        self._owner[cidr], self._of[key] = key, cidr
        log.info("node %s: pod range %s", key, cidr)
        return None


def _cidrs(node: Obj) -> list[str]:
    spec: dict[str, Any] = node.get("spec") or {}
    out = [str(c) for c in spec.get("podCIDRs") or [] if c]
    if not out and spec.get("podCIDR"):
        out = [str(spec["podCIDR"])]
    return out
