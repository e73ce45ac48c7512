"""Kill -9 the leading server while a client writes, deletes pods and watches.

Checks, against two real ``corral server`` processes over a real 3-member
etcd: a new leader within 5 s; every acknowledged write present after the
switch; the watch resumes on the surviving server from its resourceVersion
(no 410, no re-list, revisions strictly increasing); and no ReplicaSet ever
has more live pods than its replicas, counted from that gapless watch — two
controllers acting at once would both replace the pods the test deletes.
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path
from typing import Any

from corral.client import errors
from corral.client.api import ApiClient
from corral.client.resources import CONFIGMAPS, PODS, REPLICASETS
from fixtures.etcd import EtcdCluster
from fixtures.ha import HaControlPlane

REPLICAS = 4
NS = "default"


def replicaset(name: str) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"replicas": REPLICAS, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": [{"name": "c", "image": "busybox"}]}}},
    }


class PodCounter:
    """Live (not terminating) pods of one ReplicaSet, from a watch that
    follows the client across servers and must never need a re-list."""

    def __init__(self, client: ApiClient, owner_uid: str) -> None:
        self.client = client
        self.owner_uid = owner_uid
        self.live: set[str] = set()
        self.max_live = 0
        self.resumes = 0
        self.revisions: list[int] = []

    def _apply(self, kind: str, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        owners = [o.get("uid") for o in meta.get("ownerReferences") or []]
        if kind == "BOOKMARK" or self.owner_uid not in owners:
            return
        if kind == "DELETED" or meta.get("deletionTimestamp"):
            self.live.discard(meta["name"])
        else:
            self.live.add(meta["name"])
        self.max_live = max(self.max_live, len(self.live))

    async def run(self, items: list[dict[str, Any]], rv: str) -> None:
        for pod in items:
            self._apply("ADDED", pod)
        while True:
            try:
                async for kind, obj in self.client.watch(PODS, NS, resource_version=rv):
                    rv = obj["metadata"]["resourceVersion"]
                    if kind != "BOOKMARK":
                        self.revisions.append(int(rv))
                    self._apply(kind, obj)
            except errors.GoneError:
                raise AssertionError("the watch had to re-list after the server switch") from None
            except (errors.ApiConnectionError, errors.ServerError):
                await asyncio.sleep(0.05)
            self.resumes += 1


async def write_forever(client: ApiClient, acked: list[str], failures: list[str]) -> None:
    i = 0
    while True:
        name = f"w-{i:05d}"
        try:
            await client.create(CONFIGMAPS, {"metadata": {"name": name, "namespace": NS},
                                             "data": {"i": str(i)}})
            acked.append(name)
        except errors.AlreadyExistsError:
            acked.append(name)  # an earlier attempt whose answer was lost did commit
        except errors.ApiError as exc:
            failures.append(f"{name}: {exc}")
            await asyncio.sleep(0.02)
            continue
        i += 1


async def delete_pods_forever(client: ApiClient, selector: str) -> None:
    rng = random.Random(1)
    while True:
        await asyncio.sleep(0.15)
        try:
            pods = (await client.list(PODS, NS, label_selector=selector))["items"]
            live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
            if live:
                await client.delete(PODS, rng.choice(live)["metadata"]["name"], NS)
        except errors.ApiError:
            pass


async def wait_until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


async def test_leader_killed_while_writing(etcd: EtcdCluster, tmp_path: Path) -> None:
    plane = HaControlPlane(tmp_path, etcd.url(), count=2)
    tasks: list[asyncio.Task[Any]] = []
    try:
        leader = plane.leader()
        survivor = next(s for s in plane.servers if s is not leader)
        assert survivor.role() == "follower"
        client = ApiClient([leader.url, survivor.url], token=plane.token, ca_file=plane.ca_file,
                           timeout=10)
        async with client:
            rs = await client.create(REPLICASETS, replicaset("web"))

            async def settled() -> bool:
                pods = (await client.list(PODS, NS, label_selector="app=web"))["items"]
                return len([p for p in pods if not p["metadata"].get("deletionTimestamp")]) == REPLICAS

            await wait_until(settled, 20, f"{REPLICAS} pods of the ReplicaSet")
            listed = await client.list(PODS, NS)
            counter = PodCounter(client, rs["metadata"]["uid"])
            acked: list[str] = []
            failures: list[str] = []
            tasks = [
                asyncio.create_task(counter.run(listed["items"], listed["metadata"]["resourceVersion"])),
                asyncio.create_task(write_forever(client, acked, failures)),
                asyncio.create_task(delete_pods_forever(client, "app=web")),
            ]
            await wait_until(lambda: _true(len(acked) >= 20), 20, "writes before the kill")

            leader.kill()
            killed_at = time.monotonic()
            await wait_until(lambda: asyncio.to_thread(lambda: survivor.role(0.5) == "leader"), 10,
                             "the survivor to lead")
            failover = time.monotonic() - killed_at
            assert failover <= 5.0, f"new leader after {failover:.2f}s"

            before = len(acked)
            await wait_until(lambda: _true(len(acked) >= before + 30), 20, "writes after the kill")
            await asyncio.sleep(1.0)  # let the new leader replace a few deleted pods
            tasks[2].cancel()
            await wait_until(settled, 20, "the new leader to restore the replica count")
            tasks[1].cancel()

            present = {cm["metadata"]["name"]
                       for cm in (await client.list_all(CONFIGMAPS, NS))[0]}
            lost = [name for name in acked if name not in present]
            assert not lost, f"acknowledged writes missing: {lost[:10]}"
            assert counter.resumes >= 1, "the watch never had to move to the surviving server"
            assert counter.revisions == sorted(set(counter.revisions)), "watch events repeated or out of order"
            assert counter.max_live <= REPLICAS, (
                f"{counter.max_live} live pods of a {REPLICAS}-replica ReplicaSet: two leaders acted")
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        plane.stop()


async def _true(value: bool) -> bool:
    return value
