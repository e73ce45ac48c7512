"""The node lifecycle controller: notices dead nodes and moves their pods.

Heartbeats are Lease renewals in ``kube-node-lease``. The arrival of each is
timed on this controller's own monotonic clock (see failure_detector.py).
A node silent for longer than its detector allows becomes unreachable: its
conditions go Unknown, it gets ``node.kubernetes.io/unreachable`` taints,
NoSchedule at once and NoExecute as the disruption policy admits
(zone_disruption.py), and the NoExecute taint evicts each pod that does not
tolerate it (tolerationSeconds counted from when the eviction became due).

Eviction of a pod on a node that fences itself (it announces its fence
timeout, and the grace we waited covers it: failover.py) is a forced
deletion: its containers are provably gone, so the replacement may start at
once and the pod object does not hang in Terminating waiting for an agent
that will not come back. A node that does not fence gets an ordinary
graceful deletion, as in Kubernetes.

Deleting a Node object evicts the pods still bound to it; a node that
registers again under the same name is simply a healthy node again.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
from collections import Counter
from dataclasses import dataclass, field

from corral.client.api import ApiClient
from corral.client.errors import ConflictError, NotFoundError
from corral.client.events import EventRecorder
from corral.client.informer import Informer
from corral.client.resources import LEASES, NODES, PODS
from corral.clock import Clock, format_timestamp
from corral.controllers.base import Controller
from corral.controllers.failure_detector import FailureDetector, FixedTimeout, make_detector
from corral.controllers.informers import SharedInformers
from corral.controllers.objects import Obj, meta
from corral.controllers.taints import (
    NOT_READY,
    UNREACHABLE,
    UNSCHEDULABLE,
    eviction_delay,
    noexecute_taints,
    same_taints,
    taint,
    with_managed,
)
from corral.controllers.zone_disruption import (
    FULL,
    NORMAL,
    DisruptionPolicy,
    TokenBucket,
    rate_for,
    zone_of,
    zone_states,
)
from corral.failover import DEFAULT_TIMING, FENCE_ANNOTATION, safe_grace

log = logging.getLogger(__name__)

LEASE_NAMESPACE = "kube-node-lease"
POD_NODE_INDEX = "spec.nodeName"
STATUS_UNKNOWN_MESSAGE = "Kubelet stopped posting node status."


@dataclass(frozen=True)
class NodeLifecycleConfig:
    grace: float = DEFAULT_TIMING.grace  # the detector's floor
    max_grace: float = 10.0  # the most an irregular node's timeout may stretch
    detector: str = "fixed"  # see failure_detector.py and docs/failover.md
    tick: float = 0.1  # how often silence is checked
    observer_lag: float = 0.5  # a tick later than this means we were not looking
    missing_node_quarantine: float = 2.0  # pods on an unknown node wait this long
    disruption: DisruptionPolicy = field(default_factory=DisruptionPolicy)

    def __post_init__(self) -> None:
        if not self.grace > 0:
            raise ValueError(f"grace: must be positive, got {self.grace}")
        if self.max_grace < self.grace:
            raise ValueError(f"max_grace: must be at least grace ({self.grace}), got {self.max_grace}")
        if self.detector not in ("fixed", "phi"):
            raise ValueError(f"detector: expected 'fixed' or 'phi', got {self.detector!r}")
        if not self.tick > 0:
            raise ValueError(f"tick: must be positive, got {self.tick}")


_SETTINGS = {
    "grace": ("grace", float), "max-grace": ("max_grace", float), "detector": ("detector", str),
    "unhealthy-threshold": ("unhealthy_threshold", float),
    "min-unhealthy": ("min_unhealthy", int), "eviction-rate": ("eviction_rate", float),
    "secondary-rate": ("secondary_rate", float),
}


def parse_node_lifecycle(text: str) -> NodeLifecycleConfig:
    """``grace=3,detector=phi,unhealthy-threshold=0.6,secondary-rate=0.05``
    (the server's ``--node-lifecycle``); a ValueError names the bad part."""
    top: dict[str, object] = {}
    policy: dict[str, object] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or key.strip() not in _SETTINGS:
            raise ValueError(f"{part!r}: expected one of {', '.join(_SETTINGS)} as KEY=VALUE")
        name, kind = _SETTINGS[key.strip()]
        try:
            parsed = kind(value.strip())
        except ValueError:
            raise ValueError(f"{key.strip()}: {value.strip()!r} is not a {kind.__name__}") from None
        (top if name in ("grace", "max_grace", "detector") else policy)[name] = parsed
    if "grace" in top and "max_grace" not in top:
        top["max_grace"] = max(float(top["grace"]), NodeLifecycleConfig.max_grace)  # type: ignore[arg-type]
    return NodeLifecycleConfig(**top, disruption=DisruptionPolicy(**policy))  # type: ignore[arg-type]


def _pod_node(pod: Obj) -> list[str]:
    node = (pod.get("spec") or {}).get("nodeName")
    return [node] if node else []


def _fence_timeout(node: Obj) -> float | None:
    try:
        return float((meta(node).get("annotations") or {})[FENCE_ANNOTATION])
    except (KeyError, TypeError, ValueError):
        return None


def _ready(node: Obj) -> str:
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return str(cond.get("status") or "Unknown")
    return "Unknown"


class NodeLifecycleController(Controller):
    name = "node-lifecycle-controller"

    def __init__(
        self,
        client: ApiClient,
        informers: SharedInformers,
        recorder: EventRecorder,
        *,
        config: NodeLifecycleConfig | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(clock=clock, workers=2)
        self.client = client
        self.recorder = recorder
        self.config = config or NodeLifecycleConfig()
        self.detector: FailureDetector = make_detector(
            self.config.detector, self.config.grace, self.config.max_grace
        )
        self.nodes = informers.get(NODES)
        self.pods = informers.index(PODS, POD_NODE_INDEX, _pod_node)
        self.leases = Informer(client, LEASES, namespace=LEASE_NAMESPACE, clock=self.clock)
        self.leases.on_sight = self._lease_stream_back
        self.watches(self.nodes, self.pods)
        # Silence is found from a heap of deadlines (when each node would
        # count as silent were it not heard from again); _deadline holds each
        # node's live entry, older entries in the heap are skipped.
        self._heap: list[tuple[float, str]] = []
        self._deadline: dict[str, float] = {}
        self._silent: set[str] = set()  # unreachable by silence, as of the last pass
        self._tracked: dict[str, tuple[str, bool]] = {}  # node -> (zone, unreachable or not ready)
        self._zone_total: Counter[str] = Counter()
        self._zone_down: Counter[str] = Counter()
        self._down: set[str] = set()
        self._admitted: set[str] = set()  # unreachable nodes whose NoExecute taint is due
        self._buckets: dict[str, TokenBucket] = {}
        self._zone_state: dict[str, str] = {}
        self._due_since: dict[str, float] = {}  # pod uid -> when its eviction clock started
        self._missing_since: dict[str, float] = {}
        self.nodes.add_handler(self._node_event, lambda o, n: self._node_event(n), self._node_deleted)
        self.pods.add_handler(self._pod_event, lambda o, n: self._pod_event(n), None)
        self.leases.add_handler(self._lease_added, self._lease_updated, None)

    # -- heartbeats ----------------------------------------------------------

    def _lease_added(self, lease: Obj) -> None:
        self._heard(meta(lease).get("name", ""))

    def _lease_updated(self, old: Obj, new: Obj) -> None:
        if meta(old).get("resourceVersion") != meta(new).get("resourceVersion"):
            self._heard(meta(new).get("name", ""))

    def _heard(self, name: str) -> None:
        """A renewal costs O(1): the detector notes it, and the node gets a
        deadline only if it has none (an early one is re-checked when due)."""
        now = self.clock.monotonic()
        self.detector.heartbeat(name, now)
        if name in self._silent:
            self._silent.discard(name)
            self._refresh(name)
            self.queue.add(name)
        if name not in self._deadline:
            self._schedule(name, now)
        elif not isinstance(self.detector, FixedTimeout):
            # A learning detector's timeout may shrink: never check later than it says.
            at = self._due_at(name, now)
            if at is not None and at < self._deadline[name]:
                self._schedule(name, now)

    def _due_at(self, name: str, now: float) -> float | None:
        node = self.nodes.cache.get(name)
        if node is None or not self.detector.knows(name):
            return None
        fence = _fence_timeout(node)
        wait = max(self.detector.timeout(name), safe_grace(fence) if fence is not None else 0.0)
        return now + wait - (self.detector.silence(name, now) or 0.0)

    def _schedule(self, name: str, now: float) -> None:
        """Push the earliest time ``name`` could count as unreachable."""
        at = self._due_at(name, now)
        if at is None:
            self._deadline.pop(name, None)
            return  # scheduled again when its Node appears
        self._deadline[name] = at
        heapq.heappush(self._heap, (at, name))

    def _node_event(self, node: Obj) -> None:
        name = meta(node).get("name", "")
        self._refresh(name)
        if name not in self._deadline and name not in self._silent:
            self._schedule(name, self.clock.monotonic())
        self.queue.add(name)

    def _node_deleted(self, node: Obj) -> None:
        name = meta(node).get("name", "")
        self._silent.discard(name)
        self._deadline.pop(name, None)
        self._refresh(name)
        self.queue.add(name)

    def _refresh(self, name: str) -> None:
        """Keep the per-zone (total, unreachable) counts current for one node."""
        node = self.nodes.cache.get(name)
        before = self._tracked.pop(name, None)
        if before is not None:
            self._zone_total[before[0]] -= 1
            self._zone_down[before[0]] -= before[1]
        down = node is not None and (name in self._silent or _ready(node) == "False")
        if down:
            self._down.add(name)
        else:
            self._down.discard(name)
            self._admitted.discard(name)
        if node is None:
            return
        zone = zone_of(meta(node).get("labels"))
        self._tracked[name] = (zone, down)
        self._zone_total[zone] += 1
        self._zone_down[zone] += down

    def _pod_event(self, pod: Obj) -> None:
        for node_name in _pod_node(pod):
            node = self.nodes.cache.get(node_name)
            if node is None or noexecute_taints(node):
                self.queue.add(node_name)

    # -- the monitor ---------------------------------------------------------

    async def run(self) -> None:
        lease_task = asyncio.create_task(self.leases.run(), name="node-lease-informer")
        monitor = asyncio.create_task(self._monitor(), name="node-monitor")
        try:
            await self.leases.wait_synced()
            await super().run()
        finally:
            for task in (lease_task, monitor):
                task.cancel()
            await asyncio.gather(lease_task, monitor, return_exceptions=True)

    async def _monitor(self) -> None:
        await self.leases.wait_synced()
        await self.nodes.wait_synced()
        expected = self.clock.monotonic() + self.config.tick
        while True:
            await self.clock.sleep(max(0.0, expected - self.clock.monotonic()))
            now = self.clock.monotonic()
            lag = now - expected
            if lag > self.config.observer_lag:
                log.warning("node monitor ran %.2fs late; not counting that against nodes", lag)
                self.detector.shift(lag)
            expected = now + self.config.tick
            if self.leases.blind_since is not None:
                continue  # our lease stream is broken: we are deaf, the nodes are not silent
            try:
                self.monitor_once(now)
            except Exception:
                log.exception("node monitor pass failed")

    def _lease_stream_back(self, blind: float) -> None:
        """The renewals sent while our own lease stream was broken (an API
        server restarting) were never ours to see: like a late monitor pass,
        that time does not count against the nodes."""
        log.warning("node lease stream was broken for %.2fs; not counting that against nodes", blind)
        self.detector.shift(blind)

    def unreachable(self, node: Obj, now: float) -> bool:
        name = meta(node).get("name", "")
        if not self.detector.knows(name):
            return False  # never heard from: no heartbeat contract to break
        silence = self.detector.silence(name, now) or 0.0
        fence = _fence_timeout(node)
        floor = safe_grace(fence) if fence is not None else 0.0
        return self.detector.expired(name, now) and silence > floor

    def monitor_once(self, now: float) -> None:
        """One pass: nodes whose deadline came (not all nodes: a pass costs
        what is due, so a tick stays cheap at thousands of nodes), each
        zone's state from running counts, and which silent nodes the
        eviction rate admits now."""
        due = []
        while self._heap and self._heap[0][0] <= now:
            at, name = heapq.heappop(self._heap)
            if self._deadline.get(name) == at:
                del self._deadline[name]
                due.append(name)
        for name in due:
            node = self.nodes.cache.get(name)
            if node is None:
                continue
            if self.unreachable(node, now):
                self._silent.add(name)
                self._refresh(name)
                self.queue.add(name)
            else:  # heard from since, or the observer's lag was forgiven
                self._schedule(name, now)
        counts = {z: (t, self._zone_down[z]) for z, t in self._zone_total.items() if t > 0}
        states = zone_states(counts, self.config.disruption)
        self._note_zone_changes(states)
        for name in sorted(self._down - self._admitted):
            zone = self._tracked[name][0]
            bucket = self._buckets.setdefault(zone, TokenBucket(now))
            if bucket.take(rate_for(states.get(zone, NORMAL), self.config.disruption), now):
                self._admitted.add(name)
                self.queue.add(name)

    def _note_zone_changes(self, states: dict[str, str]) -> None:
        for zone, state in states.items():
            before = self._zone_state.get(zone, NORMAL)
            if state == before:
                continue
            self._zone_state[zone] = state
            label = f'zone "{zone}"' if zone else "the cluster"
            if state == NORMAL:
                message = f"{label} is healthy again: evictions at the normal rate"
                kind = "Normal"
            elif state == FULL:
                message = (f"every node in {label} stopped renewing its lease at once: evictions "
                           f"paused (the control plane's own network may be at fault)")
                kind = "Warning"
            else:
                rate = self.config.disruption.secondary_rate
                message = (f"most nodes in {label} stopped renewing their leases: evictions "
                           f"slowed to {rate:g} node/s (the control plane's own network may "
                           f"be at fault)")
                kind = "Warning"
            log.warning("%s", message)
            for name, (node_zone, _) in self._tracked.items():
                node = self.nodes.cache.get(name)
                if node_zone == zone and node is not None:
                    self.recorder.record(node, kind, f"Zone{state}", message)

    # -- reconcile -----------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        node = self.nodes.cache.get(key)
        now = self.clock.monotonic()
        if node is None:
            return await self._node_gone(key, now)
        self._missing_since.pop(key, None)
        silent = self.unreachable(node, now)
        if silent:
            node = await self._mark_unknown(node)
        wanted = self._wanted_taints(node, silent)
        current = (node.get("spec") or {}).get("taints") or []
        new = with_managed(current, wanted)
        if not same_taints(current, new):
            node = await self._set_taints(node, new)
        taints = noexecute_taints(node)
        if not taints:
            self._forget_pods(key)
            return None
        return await self._evict_pods(node, taints, force=silent and _fence_timeout(node) is not None,
                                      now=now)

    def _wanted_taints(self, node: Obj, silent: bool) -> list[Obj]:
        name = meta(node).get("name", "")
        stamp = format_timestamp(self.clock.now())
        wanted = []
        if (node.get("spec") or {}).get("unschedulable"):
            wanted.append(taint(UNSCHEDULABLE, "NoSchedule"))
        if silent:
            wanted.append(taint(UNREACHABLE, "NoSchedule"))
            if name in self._admitted:
                wanted.append(taint(UNREACHABLE, "NoExecute", stamp))
        elif _ready(node) == "False":
            wanted.append(taint(NOT_READY, "NoSchedule"))
            if name in self._admitted:
                wanted.append(taint(NOT_READY, "NoExecute", stamp))
        return wanted

    async def _mark_unknown(self, node: Obj) -> Obj:
        conds = (node.get("status") or {}).get("conditions") or []
        stamp = format_timestamp(self.clock.now())
        changed = False
        new = []
        for cond in conds:
            if cond.get("type") in ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure") \
                    and cond.get("status") != "Unknown":
                cond = {**cond, "status": "Unknown", "reason": "NodeStatusUnknown",
                        "message": STATUS_UNKNOWN_MESSAGE, "lastTransitionTime": stamp}
                changed = True
            new.append(cond)
        if not changed:
            return node
        name = meta(node)["name"]
        log.warning("node %s stopped renewing its lease: marking it unreachable", name)
        self.recorder.record(node, "Normal", "NodeNotReady", f"Node {name} status is now: NodeNotReady")
        patch = {"metadata": {"resourceVersion": meta(node).get("resourceVersion")},
                 "status": {"conditions": new}}
        return await self.client.patch(NODES, name, patch, subresource="status")

    async def _set_taints(self, node: Obj, taints: list[Obj]) -> Obj:
        patch = {"metadata": {"resourceVersion": meta(node).get("resourceVersion")},
                 "spec": {"taints": taints}}
        return await self.client.patch(NODES, meta(node)["name"], patch)

    # -- evictions -----------------------------------------------------------

    async def _evict_pods(self, node: Obj, taints: list[Obj], *, force: bool, now: float
                          ) -> float | None:
        name = meta(node)["name"]
        wake = math.inf
        due = []
        for pod in self.pods.cache.by_index(POD_NODE_INDEX, name):
            if meta(pod).get("deletionTimestamp") and not force:
                continue
            delay = eviction_delay(pod, taints)
            if delay == math.inf:
                continue
            started = self._due_since.setdefault(meta(pod).get("uid", ""), now)
            remaining = started + delay - now
            if remaining > 0:
                wake = min(wake, remaining)
            else:
                due.append(pod)
        why = f"node {name} is tainted " + ", ".join(f"{t['key']}:{t['effect']}" for t in taints)
        # Together: every second spent here is a second of the outage.
        await asyncio.gather(*(self._evict(pod, force=force, why=why) for pod in due))
        return None if wake == math.inf else wake

    async def _evict(self, pod: Obj, *, force: bool, why: str) -> None:
        md = meta(pod)
        ns, name, uid = md.get("namespace", ""), md.get("name", ""), md.get("uid", "")
        log.info("evicting pod %s/%s (%s%s)", ns, name, why, "; node fenced, forced" if force else "")
        if not md.get("deletionTimestamp"):
            self.recorder.record(pod, "Normal", "TaintManagerEviction",
                                 f"Marking for deletion Pod {ns}/{name}")
        try:
            await self.client.delete(PODS, name, ns, grace_period_seconds=0 if force else None,
                                     preconditions={"uid": uid})
        except (NotFoundError, ConflictError):
            pass
        self._due_since.pop(uid, None)

    def _forget_pods(self, node_name: str) -> None:
        for pod in self.pods.cache.by_index(POD_NODE_INDEX, node_name):
            self._due_since.pop(meta(pod).get("uid", ""), None)

    async def _node_gone(self, name: str, now: float) -> float | None:
        """Pods bound to a node that no longer exists. A short quarantine
        covers a node the informer has not seen yet."""
        pods = self.pods.cache.by_index(POD_NODE_INDEX, name)
        if not pods:
            self._missing_since.pop(name, None)
            self.detector.forget(name)
            return None
        since = self._missing_since.setdefault(name, now)
        remaining = since + self.config.missing_node_quarantine - now
        if remaining > 0:
            return remaining
        # The agent may still be alive (someone deleted a healthy node): then
        # it stops the pods itself. If it has been silent past the grace, its
        # fence (if any) has fired, or nothing will ever confirm the deletion.
        silence = self.detector.silence(name, now)
        force = silence is None or silence > max(self.detector.timeout(name),
                                                 safe_grace(DEFAULT_TIMING.fence_timeout))
        await asyncio.gather(*(
            self._evict(pod, force=force, why=f"node {name} was deleted")
            for pod in pods if force or not meta(pod).get("deletionTimestamp")))
        return self.config.missing_node_quarantine
