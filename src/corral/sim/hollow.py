"""Hollow nodes: API clients that behave like agents but run nothing.

Each hollow node registers its own Node (Ready, with allocatable capacity,
hostname/zone labels and the runtimes it offers), renews its own Lease in
kube-node-lease every lease period (10 s by default, as a kubelet's node
lease), and reacts to its own pods: a pod bound to it is
marked Running (a status write, as an agent reports a started pod) and a
pod deleted gracefully is confirmed (a delete with grace 0, as an agent does
once the containers stopped). Nothing is started, so thousands fit in one
process and the real server, store, controllers and scheduler carry the load.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
from dataclasses import dataclass, field
from typing import Any

from corral.client.api import ApiClient
from corral.client.errors import AlreadyExistsError, ApiError, ConflictError, NotFoundError
from corral.client.resources import LEASES, NODES, PODS
from corral.clock import Clock, RealClock, format_microtime, format_timestamp

log = logging.getLogger(__name__)

Obj = dict[str, Any]
LEASE_NAMESPACE = "kube-node-lease"
LEASE_SECONDS = 40
LEASE_PERIOD = 10.0


@dataclass
class NodeShape:
    cpu: str = "32"
    memory: str = "128Gi"
    pods: int = 110
    zones: int = 3
    runtimes: str = "process"
    # label -> (value, every): the label goes on nodes whose index is a multiple of every.
    labels: dict[str, tuple[str, int]] = field(default_factory=dict)
    # Hollow nodes run no pod network, so by default each brings its own
    # spec.podCIDR (the i-th /24 of this range) and the node IPAM controller
    # has nothing to allocate for them; None leaves allocation to it.
    pod_cidr_range: str | None = "100.64.0.0/10"

    def pod_cidr(self, index: int) -> str | None:
        if not self.pod_cidr_range:
            return None
        net = ipaddress.ip_network(self.pod_cidr_range)
        if net.prefixlen > 24 or index >= 2 ** (24 - net.prefixlen):
            return None
        return str(ipaddress.ip_network((int(net.network_address) + (index << 8), 24)))


class HollowNode:
    def __init__(self, client: ApiClient, name: str, index: int, shape: NodeShape,
                 clock: Clock | None = None, address: str = "127.0.0.1",
                 lease_period: float = LEASE_PERIOD) -> None:
        self.client = client
        self.name = name
        self.index = index
        self.shape = shape
        self.clock = clock or RealClock()
        self.address = address
        # Like an agent, a hollow node tells the control plane how long it
        # may go without renewing (three periods), so the node lifecycle
        # controller's grace for it follows its slower, kubelet-like cadence.
        self.fence_timeout = 3 * lease_period
        self.running: set[str] = set()  # pods this node has reported Running
        self.renewals = 0

    def node_object(self) -> Obj:
        now = format_timestamp(self.clock.now())
        s = self.shape
        resources = {"cpu": s.cpu, "memory": s.memory, "pods": str(s.pods), "ephemeral-storage": "100Gi"}
        cidr = s.pod_cidr(self.index)
        return {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {
                "name": self.name,
                "labels": {"kubernetes.io/hostname": self.name, "kubernetes.io/os": "linux",
                           "topology.kubernetes.io/zone": f"zone-{self.index % max(1, s.zones)}",
                           "corral.dev/hollow": "true",
                           **{k: v for k, (v, every) in s.labels.items() if self.index % every == 0}},
                "annotations": {"corral.dev/runtimes": s.runtimes,
                                "corral.dev/fence-timeout-seconds": f"{self.fence_timeout:g}"},
            },
            "spec": {"podCIDR": cidr, "podCIDRs": [cidr]} if cidr else {},
            "status": {
                "capacity": resources, "allocatable": resources,
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                "message": "hollow node is posting ready status",
                                "lastHeartbeatTime": now, "lastTransitionTime": now}],
                "addresses": [{"type": "InternalIP", "address": self.address},
                              {"type": "Hostname", "address": self.name}],
                "nodeInfo": {"kubeletVersion": "v1.32.0-corral-hollow", "operatingSystem": "linux",
                             "architecture": "amd64", "containerRuntimeVersion": "hollow://0"},
            },
        }

    async def register(self) -> None:
        """Create the Node with its status in one write (as a kubelet
        registers), or take over an existing one and refresh its status;
        then take the Lease, creating it first since a new node has none."""
        wanted = self.node_object()
        try:
            await self.client.create(NODES, wanted)
        except AlreadyExistsError:
            node = await self.client.get(NODES, self.name)
            node["metadata"].setdefault("labels", {}).update(wanted["metadata"]["labels"])
            node["metadata"].setdefault("annotations", {}).update(wanted["metadata"]["annotations"])
            node = await self.client.replace(NODES, node)
            node["status"] = wanted["status"]
            await self.client.replace_status(NODES, node)
        await self.renew_lease(create=True)

    async def renew_lease(self, create: bool = False) -> None:
        """One write: a patch of renewTime (or, with ``create``, the Lease
        itself, falling back to the patch if it exists)."""
        spec = {"holderIdentity": self.name, "leaseDurationSeconds": LEASE_SECONDS,
                "renewTime": format_microtime(self.clock.now())}
        lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                 "metadata": {"name": self.name, "namespace": LEASE_NAMESPACE},
                 "spec": {**spec, "acquireTime": spec["renewTime"]}}
        if create:
            try:
                await self.client.create(LEASES, lease)
                self.renewals += 1
                return
            except AlreadyExistsError:
                pass
        try:
            await self.client.patch(LEASES, self.name, {"spec": spec}, LEASE_NAMESPACE, full=False)
        except NotFoundError:
            with contextlib.suppress(AlreadyExistsError):
                await self.client.create(LEASES, lease)
        self.renewals += 1

    def wants(self, pod: Obj) -> bool:
        """Does this pod need anything from us?"""
        md = pod.get("metadata") or {}
        if md.get("deletionTimestamp"):
            return True
        phase = (pod.get("status") or {}).get("phase")
        return phase not in ("Running", "Succeeded", "Failed") and md.get("uid") not in self.running

    async def handle(self, pod: Obj) -> None:
        md = pod["metadata"]
        if md.get("deletionTimestamp"):
            # The containers "stopped" at once: confirm the graceful delete.
            with contextlib.suppress(NotFoundError, ConflictError):
                await self.client.delete(PODS, md["name"], md["namespace"], grace_period_seconds=0,
                                         preconditions={"uid": md.get("uid")})
            self.running.discard(md.get("uid"))
            return
        if not self.wants(pod):
            return
        self.running.add(md.get("uid"))
        try:
            # The answer (the whole pod again) is not needed: its head only.
            await self.client.patch(PODS, md["name"], {"status": self.running_status(pod)},
                                    md["namespace"], subresource="status", full=False)
        except NotFoundError:
            self.running.discard(md.get("uid"))
        except ApiError:
            self.running.discard(md.get("uid"))
            raise

    def running_status(self, pod: Obj) -> Obj:
        now = format_timestamp(self.clock.now())
        containers = (pod.get("spec") or {}).get("containers") or []
        conds = [{"type": t, "status": "True", "lastProbeTime": None, "lastTransitionTime": now}
                 for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")]
        return {
            "phase": "Running", "hostIP": self.address, "podIP": self.address,
            "podIPs": [{"ip": self.address}], "startTime": now, "conditions": conds,
            "containerStatuses": [{"name": c.get("name", ""), "image": c.get("image", ""), "imageID": "",
                                   "ready": True, "started": True, "restartCount": 0,
                                   "containerID": f"hollow://{pod['metadata'].get('uid', '')}/{c.get('name', '')}",
                                   "state": {"running": {"startedAt": now}}} for c in containers],
        }
