"""How much ReplicaSet controller work one pod event costs.

A ReplicaSet of 800 pods in real informer caches, a fake API client, and the
events such a ReplicaSet sees in a scheduling burst: each pod created
(ADDED), bound (nodeName), then Running and Ready. After every event the
queue is drained, the worst case for coalescing (in a live process events
arrive in bursts and the work queue merges more of them). The controller's
own status writes come back as ReplicaSet updates, as they do from a watch.
The namespace also holds plain pods no selector picks, as in the bench.

Run as a script for CPU per event: ``.venv/bin/python
tests/unit/controllers/test_replicaset_sync_cost.py``.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from typing import Any

from corral.client.resources import PODS, REPLICASETS
from corral.clock import FakeClock
from corral.controllers.informers import SharedInformers
from corral.controllers.replicaset import ReplicaSetController

REPLICAS = 800
PLAIN_PODS = 1000  # orphans of the same namespace that no selector picks


class _Recorder:
    def record(self, obj: Any, type_: str, reason: str, message: str) -> None:
        pass


class _Client:
    """Creates and status writes answered at once, echoed into informers."""

    def __init__(self) -> None:
        self.rv = itertools.count(100)
        self.names = itertools.count()
        self.created: list[dict[str, Any]] = []
        self.status_writes = 0
        self.rs_informer: Any = None

    async def create(self, res: Any, obj: dict[str, Any], namespace: str | None = None, *,
                     full: bool = True) -> dict:
        assert res is PODS
        n = next(self.names)
        md = dict(obj["metadata"], name=f"{obj['metadata']['generateName']}{n}",
                  uid=f"pod-uid-{n}", resourceVersion=str(next(self.rv)),
                  creationTimestamp="2026-01-01T00:00:00Z")
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": md, "spec": dict(obj["spec"]),
               "status": {"phase": "Pending"}}
        self.created.append(pod)
        return pod if full else {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": md["name"]}}

    async def replace_status(self, res: Any, obj: dict[str, Any]) -> dict[str, Any]:
        assert res is REPLICASETS
        self.status_writes += 1
        out = dict(obj, metadata=dict(obj["metadata"], resourceVersion=str(next(self.rv))))
        self.rs_informer.apply("MODIFIED", out)
        return out

    async def patch(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        raise AssertionError("nothing to adopt or release here")

    async def delete(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("nothing to delete here")


def _replicaset() -> dict[str, Any]:
    labels = {"app": "web", "pod-template-hash": "abc"}
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "web-abc", "namespace": "ns", "uid": "rs-uid",
                         "resourceVersion": "1", "generation": 1},
            "spec": {"replicas": REPLICAS, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "c", "image": "i"}]}}}}


def _plain_pod(i: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"plain-{i}", "namespace": "ns", "uid": f"plain-{i}",
                         "resourceVersion": "2", "labels": {"app": "plain"}},
            "spec": {"nodeName": "node-1"}, "status": {"phase": "Running"}}


def _bound(pod: dict[str, Any], rv: int) -> dict[str, Any]:
    return dict(pod, metadata=dict(pod["metadata"], resourceVersion=str(rv)),
                spec=dict(pod["spec"], nodeName="node-1"))


def _running(pod: dict[str, Any], rv: int) -> dict[str, Any]:
    status = {"phase": "Running", "conditions": [
        {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:01Z"}],
        "containerStatuses": [{"name": "c", "ready": True, "restartCount": 0}]}
    return dict(pod, metadata=dict(pod["metadata"], resourceVersion=str(rv)), status=status)


async def run_burst() -> dict[str, float]:
    """Drive the burst; syncs, events and CPU seconds spent."""
    client = _Client()
    informers = SharedInformers(client, clock=FakeClock())  # type: ignore[arg-type]
    ctl = ReplicaSetController(client, informers, _Recorder(), clock=FakeClock())  # type: ignore[arg-type]
    client.rs_informer = ctl.rs_informer
    ctl.rs_informer.replace([_replicaset()], "1")
    ctl.pod_informer.replace([_plain_pod(i) for i in range(PLAIN_PODS)], "1")
    syncs = 0
    real_reconcile = ctl.reconcile

    async def counting(key: str) -> float | None:
        nonlocal syncs
        syncs += 1
        return await real_reconcile(key)

    ctl.reconcile = counting  # type: ignore[method-assign]

    async def drain() -> None:
        while len(ctl.queue):
            key = await ctl.queue.get()
            try:
                await ctl.process(key)
            finally:
                ctl.queue.done(key)

    events: deque[tuple[str, dict[str, Any]]] = deque()
    rv = itertools.count(10_000)
    handled = 0
    start = time.process_time()
    await drain()
    while True:
        events.extend(("ADDED", p) for p in client.created)
        client.created.clear()
        if not events:
            break
        stage, pod = events.popleft()
        if stage == "ADDED":
            ctl.pod_informer.apply("ADDED", pod)
            events.append(("BIND", pod))
        elif stage == "BIND":
            bound = _bound(pod, next(rv))
            ctl.pod_informer.apply("MODIFIED", bound)
            events.append(("RUN", bound))
        else:
            ctl.pod_informer.apply("MODIFIED", _running(pod, next(rv)))
        handled += 1
        await drain()
    cpu = time.process_time() - start
    rs = ctl.rs_informer.cache.get("ns/web-abc")
    assert rs is not None
    return {"events": handled, "syncs": syncs, "cpu": cpu, "status_writes": client.status_writes,
            "status": rs.get("status") or {}, "pods": len(ctl.pod_informer.cache)}


def test_burst_creates_exactly_the_replicas_and_reports_them() -> None:
    result = asyncio.run(run_burst())
    assert result["pods"] == REPLICAS + PLAIN_PODS
    assert result["events"] == 3 * REPLICAS
    status = result["status"]
    assert status["replicas"] == REPLICAS
    assert status["readyReplicas"] == REPLICAS
    assert status["availableReplicas"] == REPLICAS
    assert status["fullyLabeledReplicas"] == REPLICAS
    # A create and a Running each wake one sync, a bind and the echo of a
    # status write none; one more to start.
    assert result["syncs"] == 2 * REPLICAS + 1


if __name__ == "__main__":
    r = asyncio.run(run_burst())
    print(f"events={r['events']} syncs={r['syncs']} syncs/event={r['syncs'] / r['events']:.2f} "
          f"status_writes={r['status_writes']} cpu={r['cpu']:.2f}s "
          f"cpu/event={1e6 * r['cpu'] / r['events']:.0f}us")
