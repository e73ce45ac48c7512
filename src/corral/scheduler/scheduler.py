"""The default scheduler: pending pods → filter → score → bind.

One loop takes pods from the scheduling queue one at a time (decisions are
sequential so each sees the previous one through the assumed-pods cache);
bindings are written concurrently, bounded by a semaphore. A pod that fits
nowhere gets PodScheduled=False/Unschedulable with Kubernetes' message, a
FailedScheduling event, and backoff.
"""

from __future__ import annotations

import asyncio
import logging

from corral.client.api import ApiClient
from corral.client.errors import ApiError, ConflictError, NotFoundError
from corral.client.events import EventRecorder
from corral.client.informer import Informer
from corral.client.resources import NODES, PODS
from corral.clock import Clock, RealClock, format_timestamp
from corral.scheduler.cache import SchedulerCache
from corral.scheduler.framework import Framework
from corral.scheduler.nodeinfo import Obj, PodInfo
from corral.scheduler.queue import SchedulingQueue

log = logging.getLogger(__name__)

MAX_CONCURRENT_BINDS = 16
# Node fields whose change can make a pending pod fit (heartbeats alone cannot).
_NODE_FIELDS = ("allocatable", "conditions", "unschedulable", "taints", "labels")


def _key(pod: Obj) -> str:
    md = pod.get("metadata") or {}
    return f"{md.get('namespace', '')}/{md.get('name', '')}"


def node_changed_for_scheduling(old: Obj, new: Obj) -> bool:
    def view(node: Obj) -> tuple[object, ...]:
        status, spec = node.get("status") or {}, node.get("spec") or {}
        conds = sorted((c.get("type"), c.get("status")) for c in status.get("conditions") or [])
        return (status.get("allocatable"), conds, spec.get("unschedulable"), spec.get("taints"),
                (node.get("metadata") or {}).get("labels"))

    return view(old) != view(new)


class Scheduler:
    def __init__(
        self, client: ApiClient, *, clock: Clock | None = None, name: str = "default-scheduler"
    ) -> None:
        self.client = client
        self.clock: Clock = clock or RealClock()
        self.name = name
        self.framework = Framework()
        self.cache = SchedulerCache()
        self.queue = SchedulingQueue(clock=self.clock)
        self.recorder = EventRecorder(client, name, clock=self.clock)
        self.pending = Informer(client, PODS, field_selector="spec.nodeName=", clock=self.clock)
        self.pods = Informer(client, PODS, clock=self.clock)
        self.nodes = Informer(client, NODES, clock=self.clock)
        self._binds = asyncio.Semaphore(MAX_CONCURRENT_BINDS)
        self._tasks: set[asyncio.Task[None]] = set()
        self.pending.add_handler(
            on_add=self._pending_changed,
            on_update=lambda old, new: self._pending_changed(new),
            on_delete=lambda pod: self.queue.remove(_key(pod)),
        )
        self.pods.add_handler(
            on_add=self.cache.update_pod,
            on_update=lambda old, new: self.cache.update_pod(new),
            on_delete=self._pod_deleted,
        )
        self.nodes.add_handler(
            on_add=self._node_added, on_update=self._node_updated, on_delete=self.cache.remove_node
        )

    # -- handlers -----------------------------------------------------------

    def responsible_for(self, pod: Obj) -> bool:
        spec = pod.get("spec") or {}
        return (
            not spec.get("nodeName")
            and (spec.get("schedulerName") or "default-scheduler") == self.name
            and not (pod.get("metadata") or {}).get("deletionTimestamp")
            and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
        )

    def _pending_changed(self, pod: Obj) -> None:
        if self.responsible_for(pod):
            self.queue.add(_key(pod))
        else:
            self.queue.remove(_key(pod))

    def _pod_deleted(self, pod: Obj) -> None:
        self.cache.remove_pod(pod)
        if (pod.get("spec") or {}).get("nodeName"):
            self.queue.move_all()

    def _node_added(self, node: Obj) -> None:
        self.cache.set_node(node)
        self.queue.move_all()

    def _node_updated(self, old: Obj, new: Obj) -> None:
        self.cache.set_node(new)
        if node_changed_for_scheduling(old, new):
            self.queue.move_all()

    # -- the loop ---------------------------------------------------------

    async def run(self) -> None:
        informers = (self.pending, self.pods, self.nodes)
        tasks = [asyncio.create_task(i.run()) for i in informers]
        tasks.append(asyncio.create_task(self.recorder.run()))
        try:
            for informer in informers:
                await informer.wait_synced()
            log.info("%s: caches synced", self.name)
            while True:
                key = await self.queue.pop()
                if key is None:
                    return
                await self.schedule_one(key)
        finally:
            self.queue.close()
            for task in [*tasks, *self._tasks]:
                task.cancel()
            await asyncio.gather(*tasks, *self._tasks, return_exceptions=True)
            await self.recorder.close()

    async def schedule_one(self, key: str) -> None:
        pod = self.pending.cache.get(key)
        bound = self.pods.cache.get(key)
        if pod is None or not self.responsible_for(pod) or self.cache.is_assumed(key):
            return
        if bound is not None and (bound.get("spec") or {}).get("nodeName"):
            return
        try:
            info = PodInfo.of(pod)
        except ValueError as exc:
            await self._unschedulable(pod, f"invalid resource requests: {exc}")
            return
        result = self.framework.schedule(info, list(self.cache.nodes.values()))
        if result.node is None:
            await self._unschedulable(pod, result.message())
            return
        self.cache.assume(info, result.node)
        await self._binds.acquire()
        task = asyncio.create_task(self._bind(pod, result.node))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _bind(self, pod: Obj, node: str) -> None:
        md = pod["metadata"]
        key = _key(pod)
        body = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": md["name"], "namespace": md.get("namespace"), "uid": md.get("uid")},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        }
        try:
            await self.client.post_subresource(PODS, md["name"], md.get("namespace"), "binding", body)
        except (NotFoundError, ConflictError) as exc:
            # Deleted, or bound by someone else: nothing left to do for it.
            log.info("%s: binding %s to %s: %s", self.name, key, node, exc)
            self.cache.forget(key)
            self.queue.remove(key)
        except ApiError as exc:
            log.warning("%s: binding %s to %s failed: %s", self.name, key, node, exc)
            self.cache.forget(key)
            self.recorder.record(pod, "Warning", "FailedScheduling", f"Binding rejected: {exc.message}")
            self.queue.unschedulable(key)
        else:
            self.queue.remove(key)
            self.recorder.record(
                pod, "Normal", "Scheduled",
                f"Successfully assigned {md.get('namespace')}/{md['name']} to {node}",
            )
        finally:
            self._binds.release()

    async def _unschedulable(self, pod: Obj, message: str) -> None:
        key = _key(pod)
        delay = self.queue.unschedulable(key)
        log.info("%s: %s unschedulable (retry in %.0fs): %s", self.name, key, delay, message)
        self.recorder.record(pod, "Warning", "FailedScheduling", message)
        current = next((c for c in (pod.get("status") or {}).get("conditions") or []
                        if c.get("type") == "PodScheduled"), None)
        if current and current.get("status") == "False" and current.get("message") == message:
            return
        condition = {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": message,
            "lastProbeTime": None,
            "lastTransitionTime": format_timestamp(self.clock.now()),
        }
        patch = {"status": {"conditions": [condition]}}
        try:
            await self.client.patch(PODS, pod["metadata"]["name"], patch,
                                    pod["metadata"].get("namespace"), patch_type="strategic",
                                    subresource="status")
        except NotFoundError:
            self.queue.remove(key)
        except ApiError as exc:
            log.warning("%s: cannot set PodScheduled on %s: %s", self.name, key, exc)
