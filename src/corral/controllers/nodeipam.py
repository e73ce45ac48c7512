"""Node IPAM: every Node gets a pod address range (``spec.podCIDR`` and
``spec.podCIDRs``) cut from the cluster CIDR, as kube-controller-manager's
range allocator does.

The set of ranges in use is never kept on its own: it is read from the Node
cache at each reconcile (plus the ranges this controller has just written and
not yet seen back), so a deleted Node's range is free again as soon as its
deletion reaches the cache, and a restarted controller picks up exactly where
the Nodes say. ``podCIDR`` is immutable once set (resources/nodes.py), so a
range is never moved under a running node. One worker, so two Nodes never
get the same range in one process; the leader election keeps it to one
process.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

from corral.client.api import ApiClient
from corral.client.errors import ConflictError, NotFoundError
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
RETRY_EXHAUSTED = 30.0


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
        self._pending: dict[str, str] = {}
        """Node name → range written but maybe not yet in the cache."""
        self.nodes.add_handler(on_add=self._node, on_update=lambda old, new: self._node(new),
                               on_delete=self._deleted)

    def _node(self, node: Obj) -> None:
        if not _cidrs(node):
            self.queue.add(str(meta(node).get("name")))

    def _deleted(self, node: Obj) -> None:
        name = str(meta(node).get("name"))
        self._pending.pop(name, None)
        # Its range is free now: a node that waited for one may get it.
        for other in self.nodes.cache.list():
            self._node(other)

    def in_use(self) -> set[ipaddress.IPv4Network]:
        used = set()
        names = set()
        for node in self.nodes.cache.list():
            names.add(str(meta(node).get("name")))
            for cidr in _cidrs(node):
                try:
                    net = ipaddress.ip_network(cidr, strict=False)
                except ValueError:
                    continue
                if isinstance(net, ipaddress.IPv4Network):
                    used.add(net)
        for name in [n for n in self._pending if n not in names]:
            del self._pending[name]
        used.update(ipaddress.IPv4Network(c) for c in self._pending.values())
        return used

    def next_free(self) -> ipaddress.IPv4Network | None:
        used = self.in_use()
        for candidate in self.cluster.subnets(new_prefix=self.node_mask):
            if not any(candidate.overlaps(u) for u in used):
                return candidate
        return None

    async def reconcile(self, key: str) -> float | None:
        node = self.nodes.cache.get(key)
        if node is None or _cidrs(node) or key in self._pending:
            return None
        cidr = self.next_free()
        if cidr is None:
            self.recorder.record(node, "Warning", "CIDRNotAvailable",
                                 f"Node {key} status is now: CIDRNotAvailable (cluster CIDR "
                                 f"{self.cluster} has no free /{self.node_mask} left)")
            return RETRY_EXHAUSTED
        patch = {"spec": {"podCIDR": str(cidr), "podCIDRs": [str(cidr)]}}
        try:
            await self.client.patch(NODES, key, patch)
        except NotFoundError:
            return None
        except ConflictError:
            raise  # retried from fresh cache state
        self._pending[key] = str(cidr)
        log.info("node %s: pod range %s", key, cidr)
        return None


def _cidrs(node: Obj) -> list[str]:
    spec: dict[str, Any] = node.get("spec") or {}
    out = [str(c) for c in spec.get("podCIDRs") or [] if c]
    if not out and spec.get("podCIDR"):
        out = [str(spec["podCIDR"])]
    return out
