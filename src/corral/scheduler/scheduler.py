"""The scheduler process: informers in, bindings out.

Pending pods wait in a priority queue; the loop takes up to a batch of them,
the :class:`SchedulingCore` places them (assuming each on its node at once,
so the next decision already sees it), and bindings are written in the
background, bounded by a semaphore, so throughput is not bound by API
latency. A pod that fits nowhere gets PodScheduled=False/Unschedulable with
Kubernetes' message, a FailedScheduling event, and backoff; one whose
priority allows it may preempt lower-priority pods (status.nominatedNodeName,
then graceful eviction of the victims).

Profiles come from ``profiles=`` (``--scheduler-config FILE``) or else the
YAML file named by the CORRAL_SCHEDULER_CONFIG environment variable; one
scheduler serves every profile's schedulerName.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import Coroutine, Sequence
from typing import Any

from corral.client.api import ApiClient
from corral.client.errors import AlreadyExistsError, ApiError, ConflictError, NotFoundError
from corral.client.events import EventRecorder
from corral.client.informer import Informer
from corral.client.resources import NAMESPACES, NODES, PDBS, PODS, Resource
from corral.clock import Clock, RealClock, format_timestamp
from corral.controllers.informers import SharedInformers
from corral.scheduler.core import Decision, SchedulingCore
from corral.scheduler.podinfo import pod_key
from corral.scheduler.preemption import Victims, budgets_from
from corral.scheduler.profile import Profile, load_profiles, load_profiles_file
from corral.scheduler.queue import SchedulingQueue

log = logging.getLogger(__name__)

Obj = dict[str, Any]
# Binds in flight. Under a pod burst a bind round trip (API worker, store,
# commit) took 0.6-0.7 s at p50, so 64 capped the scheduler at ~100 binds/s
# and its loop sat blocked on this bound for 16 of a 33 s run (1,000 hollow
# nodes, 2,000 pods); the client's connection pool still bounds the sockets.
MAX_CONCURRENT_WRITES = 256
BATCH = 256
PRIORITY_CLASSES = Resource("scheduling.k8s.io", "v1", "priorityclasses", "PriorityClass", False)
CONFIG_ENV = "CORRAL_SCHEDULER_CONFIG"


def node_changed_for_scheduling(old: Obj, new: Obj) -> bool:
    def view(node: Obj) -> tuple[object, ...]:
        status, spec, md = node.get("status") or {}, node.get("spec") or {}, node.get("metadata") or {}
        conds = sorted((c.get("type"), c.get("status")) for c in status.get("conditions") or [])
        return (status.get("allocatable"), conds, spec.get("unschedulable"), spec.get("taints"),
                md.get("labels"), (md.get("annotations") or {}).get("corral.dev/runtimes"))

    return view(old) != view(new)


def _holds_resources(pod: Obj) -> bool:
    return bool((pod.get("spec") or {}).get("nodeName")) and \
        (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


def profiles_from_env() -> list[Profile]:
    path = os.environ.get(CONFIG_ENV)
    return load_profiles_file(path) if path else load_profiles(None)


class Scheduler:
    def __init__(
        self, client: ApiClient, *, clock: Clock | None = None, name: str = "default-scheduler",
        profiles: Sequence[Profile] | None = None, rng: random.Random | None = None,
        informers: SharedInformers | None = None,
    ) -> None:
        """``informers``: a set shared with other components of the process
        (the controller manager), so a pod event is received, decoded and
        cached once; else its own over ``client``. Writes go through
        ``client`` either way. Cached objects are shared: never changed here."""
        self.client = client
        self.clock: Clock = clock or RealClock()
        self.informers = informers or SharedInformers(client, clock=self.clock)
        self.name = name
        if profiles is None:
            profiles = profiles_from_env()
            if name != "default-scheduler":
                profiles = [Profile(name, p.strategy, p.weights, p.disabled, p.extra_scores)
                            for p in profiles[:1]]
        self.core = SchedulingCore(list(profiles), rng or random.Random())
        self.queue = SchedulingQueue(clock=self.clock)
        self.recorder = EventRecorder(client, name, clock=self.clock)
        self.pods = self.informers.get(PODS)
        self.nodes = self.informers.get(NODES)
        self.namespaces = self.informers.get(NAMESPACES)
        self.pdbs: Informer | None = None
        self._writes = asyncio.Semaphore(MAX_CONCURRENT_WRITES)
        self._tasks: set[asyncio.Task[None]] = set()
        self.pods.add_handler(on_add=self._pod_changed, on_update=lambda old, new: self._pod_changed(new),
                              on_delete=self._pod_deleted)
        self.nodes.add_handler(on_add=self._node_added, on_update=self._node_updated,
                               on_delete=lambda n: self._node_deleted(n))
        self.namespaces.add_handler(
            on_add=self._namespace_changed, on_update=lambda old, new: self._namespace_changed(new),
            on_delete=lambda ns: self.core.state.set_namespace(ns["metadata"]["name"], None))

    @property
    def state(self) -> Any:
        return self.core.state

    # -- informer handlers ----------------------------------------------------

    def responsible_for(self, pod: Obj) -> bool:
        spec = pod.get("spec") or {}
        return (
            not spec.get("nodeName")
            and self.core.handles(spec.get("schedulerName"))
            and not (pod.get("metadata") or {}).get("deletionTimestamp")
            and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
        )

    def _pod_changed(self, pod: Obj) -> None:
        key = pod_key(pod)
        state = self.core.state
        if _holds_resources(pod):
            node = pod["spec"]["nodeName"]
            placed = state.pods.get(key)
            if placed is not None and placed.node == node:
                placed.assumed = False  # our binding, now confirmed
            else:
                try:
                    state.place(key, self.core.classes.of(pod), node)
                except ValueError as exc:
                    log.warning("%s: ignoring bound pod %s: %s", self.name, key, exc)
            self.queue.remove(key)
            self.core.forget_nomination(key)
            return
        placed = state.pods.get(key)
        if placed is not None and not placed.assumed:
            state.unplace(key)  # finished: its room is free again
            self.queue.move_all()
        if self.responsible_for(pod):
            if placed is None:
                spec, md = pod.get("spec") or {}, pod.get("metadata") or {}
                prio = spec.get("priority") if isinstance(spec.get("priority"), int) else 0
                self.queue.add(key, prio, str(md.get("creationTimestamp") or ""))
        else:
            self.queue.remove(key)

    def _pod_deleted(self, pod: Obj) -> None:
        key = pod_key(pod)
        held = key in self.core.state.pods
        self.core.state.unplace(key)
        self.queue.remove(key)
        self.core.forget_nomination(key)
        if held:
            self.queue.move_all()

    def _node_added(self, node: Obj) -> None:
        self.core.state.set_node(node)
        self.queue.move_all()

    def _node_updated(self, old: Obj, new: Obj) -> None:
        if node_changed_for_scheduling(old, new):
            self.core.state.set_node(new)
            self.queue.move_all()

    def _node_deleted(self, node: Obj) -> None:
        self.core.state.remove_node((node.get("metadata") or {}).get("name", ""))

    def _namespace_changed(self, ns: Obj) -> None:
        md = ns.get("metadata") or {}
        self.core.state.set_namespace(md.get("name", ""), dict(md.get("labels") or {}))

    def _budgets_changed(self, *_: Obj) -> None:
        if self.pdbs is not None:
            self.core.budgets = budgets_from(self.pdbs.cache.list())

    async def _pdbs_served(self) -> bool:
        """Budgets are read only if the API serves policy/v1 PodDisruptionBudgets."""
        try:
            found = await self.client.request("GET", "/apis/policy/v1")
        except ApiError:
            return False
        return any(r.get("name") == "poddisruptionbudgets" for r in found.get("resources") or [])

    # -- the loop -------------------------------------------------------------

    async def ensure_priority_classes(self) -> None:
        """The system classes exist from the start, as Kubernetes' API server
        creates them; whoever comes first creates them."""
        from corral.resources.priorityclasses import BUILTIN_CLASSES

        for cls in BUILTIN_CLASSES:
            try:
                await self.client.create(PRIORITY_CLASSES, dict(cls))
            except AlreadyExistsError:
                pass
            except ApiError as exc:
                log.info("%s: cannot create PriorityClass %s: %s", self.name, cls["metadata"]["name"], exc)

    async def run(self) -> None:
        await self.ensure_priority_classes()
        informers = [self.namespaces, self.nodes, self.pods]
        if await self._pdbs_served():
            self.pdbs = self.informers.get(PDBS)
            self.pdbs.add_handler(self._budgets_changed, self._budgets_changed, self._budgets_changed)
            informers.append(self.pdbs)
        tasks = [asyncio.create_task(self.informers.run(), name=f"{self.name}-informers"),
                 asyncio.create_task(self.recorder.run())]
        try:
            for informer in informers:
                await informer.wait_synced()
            log.info("%s: caches synced (%d nodes)", self.name, self.core.state.node_count)
            while True:
                keys = await self.queue.pop_many(BATCH)
                if not keys:
                    return
                await self.schedule_keys(keys)
        finally:
            self.queue.close()
            for task in [*tasks, *self._tasks]:
                task.cancel()
            await asyncio.gather(*tasks, *self._tasks, return_exceptions=True)
            await self.recorder.close()

    async def schedule_keys(self, keys: list[str]) -> None:
        pods = []
        for key in keys:
            pod = self.pods.cache.get(key)
            if pod is not None and self.responsible_for(pod) and key not in self.core.state.pods:
                pods.append(pod)
        for d in self.core.schedule(pods):
            if d.node is not None:
                await self._spawn(self._bind(d.pod, d.node))
            elif d.waiting:
                self.queue.requeue(d.key)
            elif d.victims is not None:
                self.queue.requeue(d.key)
                await self._spawn(self._preempt(d, d.victims))
            else:
                self.queue.unschedulable(d.key)
                await self._spawn(self._unschedulable(d.pod, d.message))

    async def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        await self._writes.acquire()
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._writes.release()
        if not task.cancelled() and task.exception() is not None:
            log.error("%s: write failed", self.name, exc_info=task.exception())

    # -- writes ---------------------------------------------------------------

    async def _bind(self, pod: Obj, node: str) -> None:
        md = pod["metadata"]
        key = pod_key(pod)
        body = {
            "apiVersion": "v1", "kind": "Binding",
            "metadata": {"name": md["name"], "namespace": md.get("namespace"), "uid": md.get("uid")},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        }
        try:
            await self.client.post_subresource(PODS, md["name"], md.get("namespace"), "binding", body)
        except (NotFoundError, ConflictError) as exc:
            # Deleted, or bound by someone else: nothing left to do for it.
            log.info("%s: binding %s to %s: %s", self.name, key, node, exc)
            self._forget(key)
            self.queue.remove(key)
        except ApiError as exc:
            log.warning("%s: binding %s to %s failed: %s", self.name, key, node, exc)
            self._forget(key)
            self.recorder.record(pod, "Warning", "FailedScheduling", f"Binding rejected: {exc.message}")
            self.queue.unschedulable(key)
        else:
            self.queue.remove(key)
            self.core.forget_nomination(key)
            self.recorder.record(pod, "Normal", "Scheduled",
                                 f"Successfully assigned {md.get('namespace')}/{md['name']} to {node}")

    def _forget(self, key: str) -> None:
        placed = self.core.state.pods.get(key)
        if placed is not None and placed.assumed:
            self.core.state.unplace(key)

    async def _unschedulable(self, pod: Obj, message: str, nominated: str | None = None) -> None:
        key = pod_key(pod)
        log.info("%s: %s unschedulable: %s", self.name, key, message)
        self.recorder.record(pod, "Warning", "FailedScheduling", message)
        status = pod.get("status") or {}
        current = next((c for c in status.get("conditions") or [] if c.get("type") == "PodScheduled"), None)
        if (current and current.get("status") == "False" and current.get("message") == message
                and status.get("nominatedNodeName") == nominated):
            return
        condition = {
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message,
            "lastProbeTime": None, "lastTransitionTime": format_timestamp(self.clock.now()),
        }
        patch: Obj = {"status": {"conditions": [condition]}}
        if nominated is not None:
            patch["status"]["nominatedNodeName"] = nominated
        try:
            await self.client.patch(PODS, pod["metadata"]["name"], patch, pod["metadata"].get("namespace"),
                                    patch_type="strategic", subresource="status")
        except NotFoundError:
            self.queue.remove(key)
        except ApiError as exc:
            log.warning("%s: cannot set PodScheduled on %s: %s", self.name, key, exc)

    async def _preempt(self, d: Decision, victims: Victims) -> None:
        """Nominate the node, then evict the victims gracefully."""
        await self._unschedulable(d.pod, d.message, nominated=victims.node)
        md = d.pod.get("metadata") or {}
        for key, _ in victims.pods:
            ns, _, name = key.partition("/")
            victim = self.pods.cache.get(key) or {"metadata": {"name": name, "namespace": ns}}
            self.recorder.record(victim, "Normal", "Preempted",
                                 f"Preempted by pod {md.get('uid', '')} on node {victims.node}")
            body = {"apiVersion": "policy/v1", "kind": "Eviction",
                    "metadata": {"name": name, "namespace": ns}}
            try:
                await self.client.post_subresource(PODS, name, ns, "eviction", body)
            except NotFoundError:
                continue
            except ApiError as exc:
                log.warning("%s: evicting %s for %s: %s", self.name, key, pod_key(d.pod), exc)
