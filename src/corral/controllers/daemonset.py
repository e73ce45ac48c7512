"""The DaemonSet controller: one pod on every node that should run it.

As in Kubernetes, the controller decides which nodes should run a daemon pod
(nodeSelector, required node affinity, taints against the pod's tolerations
plus the ones every daemon pod gets), creates each pod with a required node
affinity on ``metadata.name`` and leaves binding to the scheduler. Nodes
joining or leaving re-evaluate every DaemonSet. A changed template rolls out
node by node within maxUnavailable (or maxSurge, new pod first).
"""

from __future__ import annotations

import copy
import logging
from datetime import datetime

from corral.client.api import ApiClient
from corral.client.errors import ApiError, NotFoundError
from corral.client.events import EventRecorder
from corral.client.resources import CONTROLLERREVISIONS, DAEMONSETS, NODES, PODS
from corral.clock import Clock
from corral.controllers import history
from corral.controllers.base import Controller
from corral.controllers.deployment_rollout import scaled_value
from corral.controllers.expectations import Expectations
from corral.controllers.informers import SharedInformers, by_namespace, by_owner_uid
from corral.controllers.objects import (
    Obj,
    controller_ref,
    int_field,
    is_deleting,
    is_pod_available,
    is_pod_ready,
    key_of,
    make_controller_ref,
    meta,
    namespace_of,
)
from corral.controllers.ownership import queue_owners_of_pods

log = logging.getLogger(__name__)

# Tolerations Kubernetes adds to every daemon pod, so node conditions and
# cordoning do not evict or block per-node agents.
DAEMON_TOLERATIONS = (
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
)


# -- which nodes -------------------------------------------------------------------


def _requirement_holds(req: Obj, values: dict[str, str]) -> bool:
    key, op, wanted = req.get("key", ""), req.get("operator"), req.get("values") or []
    have = values.get(key)
    if op == "In":
        return have is not None and have in wanted
    if op == "NotIn":
        return have is None or have not in wanted
    if op == "Exists":
        return have is not None
    if op == "DoesNotExist":
        return have is None
    if op in ("Gt", "Lt") and have is not None and wanted:
        try:
            return int(have) > int(wanted[0]) if op == "Gt" else int(have) < int(wanted[0])
        except ValueError:
            return False
    return False


def affinity_matches(pod_spec: Obj, node: Obj) -> bool:
    required = (((pod_spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution"))
    if not required:
        return True
    labels = meta(node).get("labels") or {}
    fields = {"metadata.name": meta(node).get("name", "")}
    for term in required.get("nodeSelectorTerms") or []:
        exprs, field_reqs = term.get("matchExpressions") or [], term.get("matchFields") or []
        if not exprs and not field_reqs:
            continue
        if all(_requirement_holds(r, labels) for r in exprs) and all(
                _requirement_holds(r, fields) for r in field_reqs):
            return True
    return False


def _tolerated(tolerations: list[Obj], taint: Obj) -> bool:
    for tol in tolerations:
        if tol.get("effect") and tol.get("effect") != taint.get("effect"):
            continue
        if (tol.get("operator") or "Equal") == "Exists":
            if not tol.get("key") or tol.get("key") == taint.get("key"):
                return True
        elif tol.get("key") == taint.get("key") and (tol.get("value") or "") == (taint.get("value") or ""):
            return True
    return False


def should_run(ds: Obj, node: Obj) -> bool:
    """Whether a daemon pod belongs on the node (ignoring capacity, which the scheduler judges)."""
    spec = ((ds.get("spec") or {}).get("template") or {}).get("spec") or {}
    labels = meta(node).get("labels") or {}
    if any(labels.get(k) != v for k, v in (spec.get("nodeSelector") or {}).items()):
        return False
    if not affinity_matches(spec, node):
        return False
    tolerations = list(spec.get("tolerations") or []) + list(DAEMON_TOLERATIONS)
    for taint in (node.get("spec") or {}).get("taints") or []:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not _tolerated(tolerations, taint):
            return False
    return not is_deleting(node)


def node_of(pod: Obj) -> str | None:
    """The node a daemon pod is bound to, or the one its affinity names."""
    name = (pod.get("spec") or {}).get("nodeName")
    if name:
        return str(name)
    required = ((((pod.get("spec") or {}).get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    for term in required.get("nodeSelectorTerms") or []:
        for req in term.get("matchFields") or []:
            if req.get("key") == "metadata.name" and req.get("operator") == "In" and req.get("values"):
                return str(req["values"][0])
    return None


def pin_to_node(spec: Obj, node: str) -> None:
    """Replace any metadata.name field requirement with this node, keeping
    the template's other terms (each term gets the requirement, as in Kubernetes)."""
    affinity = spec.setdefault("affinity", {})
    node_aff = affinity.setdefault("nodeAffinity", {})
    required = node_aff.setdefault("requiredDuringSchedulingIgnoredDuringExecution", {})
    terms = required.get("nodeSelectorTerms") or [{}]
    req = {"key": "metadata.name", "operator": "In", "values": [node]}
    for term in terms:
        fields = [f for f in term.get("matchFields") or [] if f.get("key") != "metadata.name"]
        term["matchFields"] = [*fields, req]
    required["nodeSelectorTerms"] = terms


def daemon_pod(ds: Obj, node: str, hash_: str) -> Obj:
    template = copy.deepcopy((ds.get("spec") or {}).get("template") or {})
    tmeta = template.get("metadata") or {}
    spec = template.get("spec") or {}
    pin_to_node(spec, node)
    tolerations = list(spec.get("tolerations") or [])
    for tol in DAEMON_TOLERATIONS:
        if tol not in tolerations:
            tolerations.append(dict(tol))
    spec["tolerations"] = tolerations
    labels = dict(tmeta.get("labels") or {})
    labels[history.HASH_LABEL] = hash_
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": f"{meta(ds)['name']}-",
            "namespace": namespace_of(ds),
            "labels": labels,
            "annotations": dict(tmeta.get("annotations") or {}),
            "ownerReferences": [make_controller_ref(ds, "apps/v1", "DaemonSet")],
        },
        "spec": spec,
    }


def rolling_bounds(ds: Obj, desired: int) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) as pod counts; OnDelete rolls nothing."""
    strategy = (ds.get("spec") or {}).get("updateStrategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        return 0, 0
    ru = strategy.get("rollingUpdate") or {}
    surge = scaled_value(ru.get("maxSurge", 0), desired, round_up=True)
    unavailable = scaled_value(ru.get("maxUnavailable", 1), desired, round_up=True)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def plan_rollout(ds: Obj, by_node: dict[str, list[Obj]], hash_: str, now: datetime) -> tuple[list[Obj], list[str]]:
    """(old pods to delete, nodes that get a surge pod) for one rolling step."""
    desired = len(by_node)
    surge, max_unavailable = rolling_bounds(ds, desired)
    if surge == 0 and max_unavailable == 0:
        return [], []
    min_ready = int_field(ds, "spec", "minReadySeconds")
    deletes: list[Obj] = []
    surge_nodes: list[str] = []
    unavailable = 0
    candidates: list[tuple[str, Obj, Obj | None]] = []
    for node, pods in sorted(by_node.items()):
        new = [p for p in pods if _hash(p) == hash_]
        old = [p for p in pods if _hash(p) != hash_]
        available_new = [p for p in new if is_pod_available(p, min_ready, now)]
        if not any(is_pod_available(p, min_ready, now) for p in pods):
            unavailable += 1
        if old:
            candidates.append((node, old[0], available_new[0] if available_new else None))
    if surge > 0:
        in_flight = sum(1 for n, _, new in candidates if new is None and _has_new(by_node[n], hash_))
        budget = surge - in_flight
        for node, old_pod, new_pod in candidates:
            if new_pod is not None:
                deletes.append(old_pod)
            elif not _has_new(by_node[node], hash_) and budget > 0:
                surge_nodes.append(node)
                budget -= 1
        return deletes, surge_nodes
    budget = max_unavailable - unavailable
    for _node, old_pod, _ in candidates:
        if not is_pod_available(old_pod, min_ready, now):
            deletes.append(old_pod)  # already unavailable: replacing it costs nothing
        elif budget > 0:
            deletes.append(old_pod)
            budget -= 1
    return deletes, surge_nodes


def _has_new(pods: list[Obj], hash_: str) -> bool:
    return any(_hash(p) == hash_ for p in pods)


def _hash(pod: Obj) -> str | None:
    return (meta(pod).get("labels") or {}).get(history.HASH_LABEL)


class DaemonSetController(Controller):
    name = "daemonset-controller"

    def __init__(
        self,
        client: ApiClient,
        informers: SharedInformers,
        recorder: EventRecorder,
        *,
        clock: Clock | None = None,
        workers: int = 2,
    ) -> None:
        super().__init__(clock=clock, workers=workers)
        self.client = client
        self.recorder = recorder
        self.expectations = Expectations(self.clock)
        self.dss = informers.index(DAEMONSETS, "namespace", by_namespace)
        self.pods = informers.index(PODS, "owner-uid", by_owner_uid)
        self.nodes = informers.get(NODES)
        self.revisions = informers.index(CONTROLLERREVISIONS, "owner-uid", by_owner_uid)
        self.watches(self.dss, self.pods, self.nodes, self.revisions)
        self.dss.add_handler(on_add=self._enqueue, on_update=lambda o, n: self._enqueue(n),
                             on_delete=lambda d: self.expectations.forget(key_of(d)))
        queue_owners_of_pods(self.pods, "DaemonSet", self.queue, self.expectations)
        self.nodes.add_handler(on_add=self._all, on_update=self._node_updated, on_delete=self._all)

    def _enqueue(self, ds: Obj) -> None:
        self.queue.add(key_of(ds))

    def _all(self, _node: Obj) -> None:
        self.enqueue_all(key_of(ds) for ds in self.dss.cache.list())

    def _node_updated(self, old: Obj, new: Obj) -> None:
        if (meta(old).get("labels"), (old.get("spec") or {}).get("taints")) != (
                meta(new).get("labels"), (new.get("spec") or {}).get("taints")):
            self._all(new)

    # -- reconcile ---------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        ds = self.dss.cache.get(key)
        if ds is None or is_deleting(ds):
            return None
        ds = copy.deepcopy(ds)
        rev = await history.current_revision(self.client, self.revisions, ds, DAEMONSETS)
        hash_ = (meta(rev).get("labels") or {}).get(history.HASH_LABEL) or history.revision_hash(ds)
        uid = meta(ds).get("uid", "")
        pods = [p for p in self.pods.cache.by_index("owner-uid", uid)
                if (controller_ref(p) or {}).get("uid") == uid and not is_deleting(p)]
        wanted = {meta(n)["name"] for n in self.nodes.cache.list() if should_run(ds, n)}
        by_node: dict[str, list[Obj]] = {n: [] for n in wanted}
        stray: list[Obj] = []
        for pod in pods:
            node = node_of(pod)
            if (pod.get("status") or {}).get("phase") == "Failed":
                stray.append(pod)  # a failed daemon pod is replaced
            elif node in by_node:
                by_node[node].append(pod)
            else:
                stray.append(pod)
        if self.expectations.satisfied(key):
            await self._converge(ds, hash_, by_node, stray)
        await self._write_status(ds, hash_, by_node, len(stray))
        await history.prune(self.client, self.revisions, ds, {h for p in pods if (h := _hash(p))})
        min_ready = int_field(ds, "spec", "minReadySeconds")
        return float(min_ready) if min_ready > 0 else None

    async def _converge(self, ds: Obj, hash_: str, by_node: dict[str, list[Obj]], stray: list[Obj]) -> None:
        now = self.clock.now()
        create: list[str] = []
        delete = list(stray)
        for node, pods in by_node.items():
            if not pods:
                create.append(node)
            elif len(pods) > 1 and not any(_hash(p) != hash_ for p in pods):
                delete += sorted(pods, key=lambda p: meta(p).get("creationTimestamp") or "")[1:]
        old_out, surge_nodes = plan_rollout(ds, {n: p for n, p in by_node.items() if p}, hash_, now)
        delete += old_out
        create += surge_nodes
        key = key_of(ds)
        if create:
            self.expectations.expect_creations(key, len(create))
        for i, node in enumerate(create):
            try:
                pod = await self.client.create(PODS, daemon_pod(ds, node, hash_), namespace_of(ds))
            except ApiError as exc:
                self.expectations.creation_observed(key, len(create) - i)
                self.recorder.record(ds, "Warning", "FailedCreate", f"Error creating: {exc.message}")
                raise
            self.recorder.record(ds, "Normal", "SuccessfulCreate", f"Created pod: {meta(pod)['name']}")
        for pod in delete:
            try:
                await self.client.delete(PODS, meta(pod)["name"], namespace_of(pod))
            except NotFoundError:
                continue
            self.recorder.record(ds, "Normal", "SuccessfulDelete", f"Deleted pod: {meta(pod)['name']}")

    async def _write_status(self, ds: Obj, hash_: str, by_node: dict[str, list[Obj]], misscheduled: int) -> None:
        now = self.clock.now()
        min_ready = int_field(ds, "spec", "minReadySeconds")
        desired = len(by_node)
        scheduled = sum(1 for pods in by_node.values() if pods)
        ready = sum(1 for pods in by_node.values() if any(is_pod_ready(p) for p in pods))
        available = sum(1 for pods in by_node.values() if any(is_pod_available(p, min_ready, now) for p in pods))
        updated = sum(1 for pods in by_node.values() if any(_hash(p) == hash_ for p in pods))
        status = dict(ds.get("status") or {})
        status.update(
            desiredNumberScheduled=desired, currentNumberScheduled=scheduled,
            numberMisscheduled=misscheduled, numberReady=ready, numberAvailable=available,
            updatedNumberScheduled=updated, numberUnavailable=max(0, desired - available),
            observedGeneration=meta(ds).get("generation", 1),
        )
        for name in ("numberAvailable", "numberUnavailable", "updatedNumberScheduled"):
            if status[name] == 0:
                status.pop(name)
        if status != (ds.get("status") or {}):
            await self.client.replace_status(DAEMONSETS, dict(ds, status=status))
