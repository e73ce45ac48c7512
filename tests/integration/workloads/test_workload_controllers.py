"""Workload controllers against the real in-process API server, on a fake
clock: time moves only when a test advances it (no sleeps), while a small
hollow agent plays the node for the pods the controllers create."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest

from corral.client.errors import InvalidError, NotFoundError, TooManyRequestsError
from corral.client.events import EventRecorder
from corral.client.informer import Informer
from corral.client.resources import (
    CRONJOBS,
    DAEMONSETS,
    DEPLOYMENTS,
    HPAS,
    JOBS,
    NODES,
    PDBS,
    PODS,
    STATEFULSETS,
)
from corral.clock import FakeClock, RealClock, format_timestamp, parse_timestamp
from corral.controllers.cronjob import CronJobController
from corral.controllers.daemonset import DaemonSetController, node_of
from corral.controllers.hpa import HorizontalPodAutoscalerController
from corral.controllers.informers import SharedInformers
from corral.controllers.job import JobController
from corral.controllers.pdb import DisruptionController
from corral.controllers.statefulset import StatefulSetController
from corral.testing import running_server

pytestmark = pytest.mark.timeout(90)
NS = "default"


async def wait_for(check: Callable[[], Awaitable[Any]], timeout: float = 20.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}: last={last!r}")


class HollowAgent:
    """Job pods run to completion (exit code from the label ``exit``, default
    0); other pods become Running and Ready. Tracks peak concurrency."""

    def __init__(self, client) -> None:
        self.client = client
        self.informer = Informer(client, PODS)
        self.queue: asyncio.Queue[dict] = asyncio.Queue()
        self.running: set[str] = set()
        self.peak = 0
        self.informer.add_handler(on_add=self.queue.put_nowait, on_update=lambda o, n: self.queue.put_nowait(n))

    async def run(self) -> None:
        task = asyncio.create_task(self.informer.run())
        try:
            while True:
                pod = await self.queue.get()
                with contextlib.suppress(Exception):
                    await self._handle(pod)
        finally:
            task.cancel()

    async def _handle(self, pod: dict) -> None:
        md = pod["metadata"]
        if md.get("deletionTimestamp"):
            with contextlib.suppress(NotFoundError):
                await self.client.delete(PODS, md["name"], md["namespace"], grace_period_seconds=0)
            return
        phase = (pod.get("status") or {}).get("phase")
        now = format_timestamp(RealClock().now())
        is_job = any(r.get("kind") == "Job" for r in md.get("ownerReferences") or [])
        if phase in ("Succeeded", "Failed"):
            self.running.discard(md["name"])
            return
        if phase == "Running" and not is_job:
            return
        if is_job and phase == "Running":
            code = int((md.get("labels") or {}).get("exit", "0"))
            self.running.discard(md["name"])
            status = {"phase": "Succeeded" if code == 0 else "Failed", "containerStatuses": [
                {"name": "main", "ready": False, "restartCount": 0, "image": "x", "imageID": "",
                 "state": {"terminated": {"exitCode": code, "finishedAt": now, "startedAt": now}}}]}
        else:
            self.running.add(md["name"])
            self.peak = max(self.peak, len(self.running))
            status = {"phase": "Running", "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": now}]}
        await self.client.patch(PODS, md["name"], {"status": status}, md["namespace"], subresource="status")


class FakeMetrics:
    def __init__(self) -> None:
        self.cpu_per_pod = 0.0

    async def pod_usage(self, namespace: str, selector: str) -> dict[str, dict[str, float]]:
        return {"*": {"cpu": self.cpu_per_pod}}


class PerPodMetrics(FakeMetrics):
    def __init__(self, client) -> None:
        super().__init__()
        self.client = client

    async def pod_usage(self, namespace: str, selector: str) -> dict[str, dict[str, float]]:
        pods, _ = await self.client.list_all(PODS, namespace, label_selector=selector)
        return {p["metadata"]["name"]: {"cpu": self.cpu_per_pod} for p in pods}


async def make_node(client, name: str) -> None:
    node = await client.create(NODES, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
    node["status"] = {"conditions": [{"type": "Ready", "status": "True",
                                      "lastTransitionTime": format_timestamp(RealClock().now())}],
                      "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}}
    await client.replace_status(NODES, node)


@pytest.fixture
async def env(tmp_path):
    clock = FakeClock(RealClock().now())
    async with running_server(tmp_path) as srv:
        client = srv.client()
        informers = SharedInformers(client, clock=clock)
        recorder = EventRecorder(client, "workloads-test", clock=clock)
        agent = HollowAgent(client)
        metrics = PerPodMetrics(client)
        controllers = [
            JobController(client, informers, recorder, clock=clock),
            CronJobController(client, informers, recorder, clock=clock),
            DaemonSetController(client, informers, recorder, clock=clock),
            StatefulSetController(client, informers, recorder, clock=clock),
            DisruptionController(client, informers, clock=clock),
            HorizontalPodAutoscalerController(client, informers, recorder, metrics=metrics, clock=clock),
        ]
        tasks = [asyncio.create_task(informers.run()), asyncio.create_task(agent.run()),
                 asyncio.create_task(recorder.run())]
        tasks += [asyncio.create_task(c.run()) for c in controllers]
        try:
            yield client, clock, agent, metrics
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await recorder.close()
            await client.close()


def job_body(name: str, **spec: Any) -> dict:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"template": {"spec": {"restartPolicy": "Never",
                                           "containers": [{"name": "main", "image": "x"}]}}, **spec}}


async def test_job_completions_with_bounded_parallelism(env) -> None:
    client, _, agent, _ = env
    await client.create(JOBS, job_body("five", completions=5, parallelism=2), NS)

    async def done():
        j = await client.get(JOBS, "five", NS)
        st = j.get("status") or {}
        return j if any(c["type"] == "Complete" for c in st.get("conditions") or []) else None
    j = await wait_for(done, what="job complete")
    assert j["status"]["succeeded"] == 5 and j["status"].get("completionTime")
    pods, _ = await client.list_all(PODS, NS, label_selector="batch.kubernetes.io/job-name=five")
    assert len(pods) == 5
    assert agent.peak <= 2


async def test_indexed_job(env) -> None:
    client, _, _, _ = env
    await client.create(JOBS, job_body("idx", completions=3, parallelism=3, completionMode="Indexed"), NS)

    async def done():
        j = await client.get(JOBS, "idx", NS)
        return j if (j.get("status") or {}).get("completedIndexes") == "0-2" else None
    await wait_for(done, what="indexes 0-2 completed")
    pods, _ = await client.list_all(PODS, NS, label_selector="batch.kubernetes.io/job-name=idx")
    indexes = sorted(p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] for p in pods)
    assert indexes == ["0", "1", "2"]
    env_var = pods[0]["spec"]["containers"][0]["env"][0]
    assert env_var["name"] == "JOB_COMPLETION_INDEX"
    assert pods[0]["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"] in ("0", "1", "2")


async def test_failing_job_backs_off_then_fails(env) -> None:
    client, clock, _, _ = env
    body = job_body("bad", backoffLimit=1)
    body["spec"]["template"]["metadata"] = {"labels": {"exit": "3"}}
    await client.create(JOBS, body, NS)

    async def pods_now():
        items, _ = await client.list_all(PODS, NS, label_selector="batch.kubernetes.io/job-name=bad")
        return items
    await wait_for(lambda: _count_failed(pods_now, 1), what="first failure")
    await asyncio.sleep(0.3)
    assert len(await pods_now()) == 1, "replacement must wait for the back-off"
    await clock.advance(25)  # past the 10 s back-off (stamps are real time, the clock starts near it)
    await wait_for(lambda: _count_failed(pods_now, 2), what="second failure after back-off")

    async def failed():
        j = await client.get(JOBS, "bad", NS)
        return [c for c in (j.get("status") or {}).get("conditions") or [] if c["type"] == "Failed"]
    cond = (await wait_for(failed, what="job failed"))[0]
    assert cond["reason"] == "BackoffLimitExceeded"


async def _count_failed(pods_now, n: int) -> bool:
    return sum(1 for p in await pods_now() if (p.get("status") or {}).get("phase") == "Failed") >= n


async def test_cronjob_fires_every_minute_on_the_fake_clock(env) -> None:
    client, clock, _, _ = env
    created = await client.create(CRONJOBS, {
        "apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "tick"},
        "spec": {"schedule": "*/1 * * * *", "successfulJobsHistoryLimit": 2,
                 "jobTemplate": {"spec": job_body("x")["spec"]}}}, NS)

    async def jobs():
        items, _ = await client.list_all(JOBS, NS)
        return [j for j in items if j["metadata"]["name"].startswith("tick-")]
    # The server stamps creationTimestamp with real time, which is past the
    # fake clock's start by however long the server took to start; bring the
    # fake clock up to it so no minute boundary hides in between.
    born = parse_timestamp(created["metadata"]["creationTimestamp"])
    await clock.advance(max(0.0, (born - clock.now()).total_seconds()) + 0.01)
    assert await jobs() == []
    seen: set[str] = set()
    for minute in range(3):
        # One second past the next boundary: past the controller's wake-up
        # (boundary + 0.1 s) whether it saw the CronJob already or sees it now.
        now = clock.now()
        boundary = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
        await clock.advance((boundary - now).total_seconds() + 1.0)

        async def job_of_this_minute(known: frozenset[str] = frozenset(seen), boundary=boundary):
            got = await _names_beyond(jobs, known)
            if not got and clock.now() < boundary + timedelta(seconds=50):
                # A sync that was still running as the clock passed the boundary
                # asks to be woken relative to when it finished; keep time moving
                # (within this minute) so such a wake-up comes too.
                await clock.advance(0.5)
            return got
        got = await wait_for(job_of_this_minute, what=f"job of minute {minute}")
        seen |= got
    cj = await client.get(CRONJOBS, "tick", NS)
    assert cj["status"].get("lastScheduleTime")

    async def pruned():
        names = {j["metadata"]["name"] for j in await jobs()}
        return names if len(names) <= 2 else None
    await wait_for(pruned, what="history limited to 2 successful jobs")


async def _names_beyond(jobs, seen: frozenset[str]) -> set[str] | None:
    names = {j["metadata"]["name"] for j in await jobs()}
    new = names - seen
    return new or None


async def test_daemonset_follows_a_joining_node(env) -> None:
    client, _, _, _ = env
    await make_node(client, "n1")
    await client.create(DAEMONSETS, {
        "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
        "spec": {"selector": {"matchLabels": {"app": "agent"}},
                 "template": {"metadata": {"labels": {"app": "agent"}},
                              "spec": {"containers": [{"name": "a", "image": "x"}]}}}}, NS)

    async def targets():
        pods, _ = await client.list_all(PODS, NS, label_selector="app=agent")
        return sorted(node_of(p) or "" for p in pods)
    await wait_for(lambda: _equals(targets, ["n1"]), what="pod for n1")
    await make_node(client, "n2")
    await wait_for(lambda: _equals(targets, ["n1", "n2"]), what="pod for joining n2")
    await client.delete(NODES, "n2")
    await wait_for(lambda: _equals(targets, ["n1"]), what="pod of departed n2 removed")

    async def status():
        ds = await client.get(DAEMONSETS, "agent", NS)
        st = ds.get("status") or {}
        return st if st.get("desiredNumberScheduled") == 1 and st.get("numberReady") == 1 else None
    await wait_for(status, what="daemonset status")


async def _equals(get, expected) -> bool:
    return await get() == expected


async def test_statefulset_creates_ordinals_in_order(env) -> None:
    client, _, _, _ = env
    await client.create(STATEFULSETS, {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
        "spec": {"replicas": 3, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                 "template": {"metadata": {"labels": {"app": "db"}},
                              "spec": {"containers": [{"name": "d", "image": "x"}]}}}}, NS)

    async def ready():
        s = await client.get(STATEFULSETS, "db", NS)
        return s if (s.get("status") or {}).get("readyReplicas") == 3 else None
    await wait_for(ready, what="3 ready replicas")
    pods, _ = await client.list_all(PODS, NS, label_selector="app=db")
    by_name = {p["metadata"]["name"]: p for p in pods}
    assert sorted(by_name) == ["db-0", "db-1", "db-2"]
    stamps = [by_name[f"db-{i}"]["metadata"]["creationTimestamp"] for i in range(3)]
    assert stamps == sorted(stamps)
    await client.patch(STATEFULSETS, "db", {"spec": {"replicas": 1}}, NS)

    async def shrunk():
        items, _ = await client.list_all(PODS, NS, label_selector="app=db")
        return sorted(p["metadata"]["name"] for p in items) == ["db-0"]
    await wait_for(shrunk, what="scaled down to db-0")


async def test_eviction_respects_the_budget(env) -> None:
    client, _, _, _ = env
    for name in ("p1", "p2"):
        await client.create(PODS, {"apiVersion": "v1", "kind": "Pod",
                                   "metadata": {"name": name, "labels": {"app": "guarded"}},
                                   "spec": {"containers": [{"name": "c", "image": "x"}]}}, NS)
    await client.create(PDBS, {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                               "metadata": {"name": "guard"},
                               "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "guarded"}}}}, NS)

    async def healthy():
        p = await client.get(PDBS, "guard", NS)
        return p if (p.get("status") or {}).get("currentHealthy") == 2 else None
    await wait_for(healthy, what="budget status")
    eviction = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "p1", "namespace": NS}}
    with pytest.raises(TooManyRequestsError) as err:
        await client.post_subresource(PODS, "p1", NS, "eviction", eviction)
    assert "disruption budget" in err.value.message
    await client.get(PODS, "p1", NS)  # still there
    await client.patch(PDBS, "guard", {"spec": {"minAvailable": 1}}, NS)

    async def allowed():
        p = await client.get(PDBS, "guard", NS)
        st = p.get("status") or {}
        return st.get("disruptionsAllowed") == 1 and st.get("observedGeneration") == p["metadata"]["generation"]
    await wait_for(allowed, what="budget allows one")
    await client.post_subresource(PODS, "p1", NS, "eviction", eviction)
    with pytest.raises(TooManyRequestsError):
        await client.post_subresource(PODS, "p2", NS, "eviction", dict(eviction, metadata={"name": "p2"}))


async def test_hpa_scales_up_and_back_down(env) -> None:
    client, clock, _, metrics = env
    await client.create(DEPLOYMENTS, {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "burn"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "burn"}},
                 "template": {"metadata": {"labels": {"app": "burn"}}, "spec": {"containers": [
                     {"name": "c", "image": "x", "resources": {"requests": {"cpu": "100m"}}}]}}}}, NS)
    await client.create(PODS, {"apiVersion": "v1", "kind": "Pod",
                               "metadata": {"name": "burn-1", "labels": {"app": "burn"}},
                               "spec": {"containers": [{"name": "c", "image": "x",
                                                        "resources": {"requests": {"cpu": "100m"}}}]}}, NS)
    await wait_for(lambda: _phase(client, "burn-1", "Running"), what="pod running")
    metrics.cpu_per_pod = 200.0  # 200% of request, target 50% → 4 replicas
    await client.create(HPAS, {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "burn"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "burn"},
                 "minReplicas": 1, "maxReplicas": 5,
                 "behavior": {"scaleDown": {"stabilizationWindowSeconds": 30}},
                 "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                     "type": "Utilization", "averageUtilization": 50}}}]}}, NS)

    async def replicas(n: int):
        d = await client.get(DEPLOYMENTS, "burn", NS)
        return d["spec"]["replicas"] == n
    await wait_for(lambda: replicas(4), what="scaled up to 4")
    metrics.cpu_per_pod = 5.0
    await clock.advance(15)
    await asyncio.sleep(0.3)
    assert await replicas(4), "scale-down waits for the stabilization window"
    for _ in range(3):
        await clock.advance(15)
    await wait_for(lambda: replicas(1), what="scaled back down to 1")
    hpa = await client.get(HPAS, "burn", NS)
    assert hpa["status"]["desiredReplicas"] == 1


async def _phase(client, name: str, phase: str) -> bool:
    return ((await client.get(PODS, name, NS)).get("status") or {}).get("phase") == phase


@pytest.mark.parametrize(("res", "body", "field"), [
    (JOBS, {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "m"},
            "spec": {"manualSelector": True, "selector": {"matchLabels": {"a": "b"}},
                     "template": {"metadata": {"labels": {"a": "c"}}, "spec": {
                         "restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}}}},
     "spec.template.metadata.labels"),
    (JOBS, {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "n"},
            "spec": {"parallelism": -1, "template": {"spec": {
                "restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}}}},
     "spec.parallelism"),
    (JOBS, {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "a"},
            "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x"}]}}}},
     "spec.template.spec.restartPolicy"),
    (CRONJOBS, {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c"},
                "spec": {"schedule": "every minute", "jobTemplate": {"spec": {"template": {"spec": {
                    "restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}}}}}},
     "spec.schedule"),
    (STATEFULSETS, {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "s"},
                    "spec": {"replicas": -2, "selector": {"matchLabels": {"a": "b"}},
                             "template": {"metadata": {"labels": {"a": "b"}}, "spec": {
                                 "containers": [{"name": "c", "image": "x"}]}}}},
     "spec.replicas"),
    (HPAS, {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "h"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "x"}, "minReplicas": 3, "maxReplicas": 2}},
     "spec.maxReplicas"),
])
async def test_bad_specs_are_422_with_the_field(env, res, body, field) -> None:
    client, _, _, _ = env
    with pytest.raises(InvalidError) as err:
        await client.create(res, body, NS)
    causes = (err.value.body.get("details") or {}).get("causes") or []
    assert field in [c.get("field") for c in causes], causes
