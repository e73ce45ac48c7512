"""The ReplicaSet controller's incremental pod count against a recount.

A controller that re-judges only the pods with events since its last sync
must end where one that judges every pod each time ends. Random pod events
(labels, owner changes, readiness, phases, deletions, binds) and ReplicaSet
edits go through real informer caches and a fake API server that echoes
every write back as a watch event; once the queue is quiet, the stored
status must equal ``replica_set_status`` over a from-scratch claim, and the
ReplicaSet must own exactly spec.replicas pods.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import random
from typing import Any

import pytest

from corral.client.resources import PODS, REPLICASETS
from corral.clock import FakeClock, format_timestamp
from corral.controllers.informers import SharedInformers
from corral.controllers.objects import (
    controller_ref,
    is_deleting,
    is_pod_active,
    matches_selector,
    meta,
)
from corral.controllers.replicaset import ReplicaSetController, pod_view, replica_set_status

NS = "ns"
RS_KEY = f"{NS}/web"


class _Recorder:
    def record(self, obj: Any, type_: str, reason: str, message: str) -> None:
        pass


class _Server:
    """Answers writes at once and feeds them back into the informers."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.rv = itertools.count(100)
        self.names = itertools.count()
        self.ctl: ReplicaSetController | None = None
        self.status_writes = 0

    def _bump(self, obj: dict[str, Any]) -> dict[str, Any]:
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(next(self.rv))
        return obj

    def pod(self, name: str, labels: dict[str, str], owner_uid: str | None) -> dict[str, Any]:
        md: dict[str, Any] = {"name": name, "namespace": NS, "uid": f"uid-{name}", "labels": labels,
                              "creationTimestamp": format_timestamp(self.clock.now())}
        if owner_uid is not None:
            md["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web",
                                      "uid": owner_uid, "controller": True}]
        return self._bump({"metadata": md, "spec": {}, "status": {"phase": "Pending"}})

    def put_pod(self, pod: dict[str, Any], type_: str = "MODIFIED") -> dict[str, Any]:
        assert self.ctl is not None
        pod = self._bump(pod)
        self.ctl.pod_informer.apply(type_, pod)
        return pod

    async def create(self, res: Any, obj: dict[str, Any], namespace: str | None = None, *,
                     full: bool = True) -> dict:
        assert res is PODS
        pod = copy.deepcopy(obj)
        pod["metadata"].update(name=f"web-{next(self.names)}", uid=f"uid-c{next(self.names)}",
                               creationTimestamp=format_timestamp(self.clock.now()))
        pod["status"] = {"phase": "Pending"}
        pod = self.put_pod(pod, "ADDED")
        return pod if full else {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod["metadata"]["name"]}}

    async def patch(self, res: Any, name: str, patch: dict[str, Any], namespace: str | None) -> dict:
        assert res is PODS and self.ctl is not None
        pod = copy.deepcopy(self.ctl.pod_informer.cache.get(f"{namespace}/{name}"))
        refs = patch["metadata"]["ownerReferences"]
        if refs is None:
            pod["metadata"].pop("ownerReferences", None)
        else:
            pod["metadata"]["ownerReferences"] = refs
        return self.put_pod(pod)

    async def delete(self, res: Any, name: str, namespace: str | None = None) -> None:
        assert self.ctl is not None
        pod = self.ctl.pod_informer.cache.get(f"{namespace}/{name}")
        self.ctl.pod_informer.apply("DELETED", pod)

    async def replace_status(self, res: Any, obj: dict[str, Any]) -> dict[str, Any]:
        assert res is REPLICASETS and self.ctl is not None
        self.status_writes += 1
        out = self._bump(obj)
        self.ctl.rs_informer.apply("MODIFIED", out)
        return out


def _replicaset(replicas: int) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "web", "namespace": NS, "uid": "rs-uid", "resourceVersion": "1",
                         "generation": 1},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web", "tier": "a"}},
                                  "spec": {"containers": [{"name": "c"}]}}}}


def _harness() -> tuple[ReplicaSetController, _Server, FakeClock, list[int]]:
    clock = FakeClock()
    server = _Server(clock)
    informers = SharedInformers(server, clock=clock)  # type: ignore[arg-type]
    ctl = ReplicaSetController(server, informers, _Recorder(), clock=clock)  # type: ignore[arg-type]
    server.ctl = ctl
    ctl.rs_informer.replace([_replicaset(4)], "1")
    ctl.pod_informer.replace([], "1")
    syncs = [0]
    real = ctl.reconcile

    async def counting(key: str) -> float | None:
        syncs[0] += 1
        return await real(key)

    ctl.reconcile = counting  # type: ignore[method-assign]
    return ctl, server, clock, syncs


async def _drain(ctl: ReplicaSetController) -> None:
    for _ in range(1000):
        if not len(ctl.queue):
            return
        key = await ctl.queue.get()
        try:
            await ctl.process(key)
        finally:
            ctl.queue.done(key)
    raise AssertionError("queue never went quiet")


def _recount(ctl: ReplicaSetController, clock: FakeClock) -> tuple[dict[str, Any], int]:
    rs = ctl.rs_informer.cache.get(RS_KEY)
    assert rs is not None
    selector = rs["spec"]["selector"]
    mine = [p for p in ctl.pod_informer.cache.list()
            if is_pod_active(p) and (controller_ref(p) or {}).get("uid") == "rs-uid"
            and (matches_selector(selector, meta(p).get("labels")) or is_deleting(rs))]
    return replica_set_status(rs, mine, clock.now()), len(mine)


async def _random_step(rng: random.Random, ctl: ReplicaSetController, server: _Server,
                 clock: FakeClock, n: int) -> None:
    pods = sorted(ctl.pod_informer.cache.list(), key=lambda p: p["metadata"]["name"])
    op = rng.choice(["new", "labels", "owner", "ready", "phase", "delete", "terminate", "bind",
                     "template", "minready", "replicas", "time"])
    if op == "new" or not pods:
        labels = rng.choice([{"app": "web"}, {"app": "web", "tier": "a"}, {"app": "db"}])
        server.put_pod(server.pod(f"x{n}", labels, rng.choice([None, "rs-uid", "other"])), "ADDED")
        return
    pod = copy.deepcopy(rng.choice(pods))
    if op == "labels":
        pod["metadata"]["labels"] = rng.choice([{"app": "web"}, {"app": "web", "tier": "a"},
                                                {"app": "db"}])
    elif op == "owner":
        pod["metadata"].pop("ownerReferences", None)
    elif op == "ready":
        flag = rng.choice(["True", "False"])
        pod["status"]["conditions"] = [{"type": "Ready", "status": flag,
                                        "lastTransitionTime": format_timestamp(clock.now())}]
    elif op == "phase":
        pod["status"]["phase"] = rng.choice(["Running", "Succeeded", "Failed", "Pending"])
    elif op == "terminate":
        pod["metadata"]["deletionTimestamp"] = format_timestamp(clock.now())
    elif op == "bind":
        pod["spec"]["nodeName"] = f"node-{n}"
    elif op == "delete":
        ctl.pod_informer.apply("DELETED", pod)
        return
    else:
        await _edit_replicaset(rng, ctl, server, clock, op)
        return
    server.put_pod(pod)


async def _edit_replicaset(rng: random.Random, ctl: ReplicaSetController, server: _Server,
                     clock: FakeClock, op: str) -> None:
    if op == "time":
        await clock.advance(rng.choice([1, 5, 30]))
        ctl.queue.add(RS_KEY)  # what add_after would do once due
        return
    rs = copy.deepcopy(ctl.rs_informer.cache.get(RS_KEY))
    if op == "template":
        rs["spec"]["template"]["metadata"]["labels"] = rng.choice(
            [{"app": "web"}, {"app": "web", "tier": "a"}])
    elif op == "minready":
        rs["spec"]["minReadySeconds"] = rng.choice([0, 10])
    else:
        rs["spec"]["replicas"] = rng.choice([0, 2, 4, 6])
    rs["metadata"]["generation"] += 1
    ctl.rs_informer.apply("MODIFIED", server._bump(rs))  # noqa: SLF001


@pytest.mark.parametrize("seed", range(25))
def test_incremental_count_matches_a_recount(seed: int) -> None:
    async def run() -> None:
        rng = random.Random(seed)
        ctl, server, clock, _ = _harness()
        await _drain(ctl)
        for n in range(80):
            await _random_step(rng, ctl, server, clock, n)
            await _drain(ctl)
            rs = ctl.rs_informer.cache.get(RS_KEY)
            expected, owned = _recount(ctl, clock)
            assert rs["status"] == expected, f"step {n}"
            assert owned == rs["spec"]["replicas"], f"step {n}"

    asyncio.run(run())


def test_status_echo_and_binds_cause_no_sync() -> None:
    async def run() -> None:
        ctl, server, _, syncs = _harness()
        await _drain(ctl)
        # Created 4 and wrote replicas=0, then counted them and wrote 4; the
        # echoes of both writes woke nothing.
        assert (server.status_writes, syncs[0]) == (2, 2)
        assert ctl.rs_informer.cache.get(RS_KEY)["status"]["replicas"] == 4
        before = syncs[0]
        for pod in ctl.pod_informer.cache.list():
            bound = copy.deepcopy(pod)
            bound["spec"]["nodeName"] = "n1"
            server.put_pod(bound)
        await _drain(ctl)
        assert syncs[0] == before
        # Someone else's status write is looked at, and corrected.
        rs = copy.deepcopy(ctl.rs_informer.cache.get(RS_KEY))
        rs["status"]["replicas"] = 99
        ctl.rs_informer.apply("MODIFIED", server._bump(rs))  # noqa: SLF001
        await _drain(ctl)
        assert syncs[0] == before + 1
        assert ctl.rs_informer.cache.get(RS_KEY)["status"]["replicas"] == 4

    asyncio.run(run())


def test_pod_view_sees_what_the_status_depends_on() -> None:
    base = {"metadata": {"labels": {"a": "1"}}, "spec": {}, "status": {"phase": "Pending"}}
    bound = copy.deepcopy(base)
    bound["spec"]["nodeName"] = "n"
    assert pod_view(base) == pod_view(bound)
    ready = copy.deepcopy(base)
    ready["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
    relabelled = copy.deepcopy(base)
    relabelled["metadata"]["labels"] = {"a": "2"}
    running = copy.deepcopy(base)
    running["status"]["phase"] = "Running"
    for changed in (ready, relabelled, running):
        assert pod_view(changed) != pod_view(base)
