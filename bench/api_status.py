"""The ``status`` phase of bench/api.py: pod status writes, the most frequent
write of a running cluster (issues #4 and #5).

Four figures. Two are the first status write of fresh pods as their node
makes it: ``status_patch`` is a hollow node's merge PATCH of
pods/NAME/status (src/corral/sim/hollow.py, user agent corral-hollow-node),
``status_put`` the node agent's PUT of the whole pod with its new status
(src/corral/agent/pod_worker.py, user agent corral-agent).
``status_put_again`` is the agent's next write of those pods (readiness
lost: two conditions and the container's ``ready`` change). The fourth,
``token_request``, is the other per-pod request of a start the server
computes: a TokenRequest for a ServiceAccount bound to one of those pods,
as the agent asks for its projected token (src/corral/client/podtoken.py). The pods look
like a ReplicaSet's (labels, one container with requests; no owner
reference, which the garbage collector would follow to a missing owner and
delete them) and are bound to a node of their own, so the scheduler leaves
them alone; the node's Lease is renewed while they are measured, so the
node lifecycle controller does not evict them either.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson
from _common import CorralChild, CpuMeter, emit

BENCH = "api"
NODE = "status-bench-node"
NOW = "2026-01-01T00:00:00Z"
PATCH_AGENT = f"corral-hollow-node/{NODE}"
PUT_AGENT = "corral-agent"


class StatusBenchError(RuntimeError):
    """A request of the status phase did not get the answer it needs."""


def pod(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": "web", "pod-template-hash": "5d8f7c9b4"}},
            "spec": {"nodeName": NODE,
                     "containers": [{"name": "app", "image": "bench:1",
                                     "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]}}


def running_status(obj: dict[str, Any]) -> dict[str, Any]:
    """What a node reports for a started pod (hollow.py's running_status)."""
    uid = obj["metadata"]["uid"]
    conds = [{"type": t, "status": "True", "lastProbeTime": None, "lastTransitionTime": NOW}
             for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")]
    return {"phase": "Running", "hostIP": "10.0.0.1", "podIP": "10.0.0.1", "podIPs": [{"ip": "10.0.0.1"}],
            "startTime": NOW, "conditions": conds,
            "containerStatuses": [{"name": "app", "image": "bench:1", "imageID": "", "ready": True,
                                   "started": True, "restartCount": 0, "containerID": f"hollow://{uid}/app",
                                   "state": {"running": {"startedAt": NOW}}}]}


async def _send(http: aiohttp.ClientSession, method: str, url: str, body: bytes, headers: dict[str, str],
                expect: int) -> dict[str, Any]:
    async with http.request(method, url, data=body, headers=headers) as resp:
        payload = await resp.read()
        if resp.status != expect:
            raise StatusBenchError(f"{method} {url} -> {resp.status}: {payload[:300]!r}")
        return orjson.loads(payload)


def _micro_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@contextlib.asynccontextmanager
async def bench_node(http: aiohttp.ClientSession, child: CorralChild) -> AsyncIterator[None]:
    """A Ready node whose Lease is renewed twice a second while in use, over
    a connection of its own (behind the measured requests in the pool, a
    renewal came late and the node lifecycle controller evicted the pods)."""
    base = child.url
    res = {"cpu": "10000", "memory": "100Ti", "pods": "100000"}
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE},
            "status": {"capacity": res, "allocatable": res,
                       "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]}}
    await _send(http, "POST", f"{base}/api/v1/nodes", orjson.dumps(node), {}, 201)
    lease_url = f"{base}/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
    spec = {"holderIdentity": NODE, "leaseDurationSeconds": 40, "renewTime": _micro_now()}
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
             "metadata": {"name": NODE, "namespace": "kube-node-lease"}, "spec": spec}
    await _send(http, "POST", lease_url, orjson.dumps(lease), {}, 201)

    async def renew() -> None:
        headers = {"Content-Type": "application/merge-patch+json", "Authorization": f"Bearer {child.token()}"}
        connector = aiohttp.TCPConnector(ssl=child.ssl_context(), limit=1)
        async with aiohttp.ClientSession(connector=connector, headers=headers) as own:
            while True:
                await asyncio.sleep(0.5)  # the failure detector expects about one a second
                body = orjson.dumps({"spec": {"renewTime": _micro_now()}})
                await _send(own, "PATCH", f"{lease_url}/{NODE}", body, {}, 200)

    task = asyncio.create_task(renew())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _create_pods(http: aiohttp.ClientSession, pods_url: str, prefix: str, count: int,
                       clients: int, closed_loop: Any) -> list[dict[str, Any]]:
    created: list[dict[str, Any]] = [{}] * count
    headers = {"User-Agent": "kube-controller-manager"}

    async def one(i: int) -> None:
        created[i] = await _send(http, "POST", pods_url, orjson.dumps(pod(f"{prefix}-{i}")), headers, 201)

    await closed_loop(clients, count, one)
    return created


async def status_writes(http: aiohttp.ClientSession, child: CorralChild, args: argparse.Namespace,
                        closed_loop: Any, make_namespace: Any) -> None:
    """``args.count`` pods for each figure, created untimed; then one status
    write per pod, timed, with the server's CPU per write."""
    ns_url = (await make_namespace(http, child.url, "bench-status")).rsplit("/", 1)[0]
    async with bench_node(http, child):
        await _status_phases(http, child, args, f"{ns_url}/pods", closed_loop)


async def _status_phases(http: aiohttp.ClientSession, child: CorralChild, args: argparse.Namespace,
                         pods_url: str, closed_loop: Any) -> None:
    params = {"clients": args.clients, "count": args.count, "server_workers": args.server_workers}

    patched = await _create_pods(http, pods_url, "hollow", args.count, args.clients, closed_loop)
    patch_headers = {"User-Agent": PATCH_AGENT, "Content-Type": "application/merge-patch+json"}
    bodies = [orjson.dumps({"status": running_status(p)}) for p in patched]

    async def patch_one(i: int) -> None:
        url = f"{pods_url}/{patched[i]['metadata']['name']}/status"
        got = await _send(http, "PATCH", url, bodies[i], patch_headers, 200)
        if got["status"].get("phase") != "Running":
            raise StatusBenchError(f"PATCH {url}: phase {got['status'].get('phase')!r} after the write")

    await _timed("status_patch", child, args, params, closed_loop, patch_one)

    fetched = await _create_pods(http, pods_url, "agent", args.count, args.clients, closed_loop)
    put_headers = {"User-Agent": PUT_AGENT, "Content-Type": "application/json"}
    puts = []
    for p in fetched:
        body = dict(p)
        body["status"] = {**running_status(p), "qosClass": p["status"].get("qosClass", "Burstable")}
        puts.append(orjson.dumps(body))

    written: list[dict[str, Any]] = [{}] * args.count

    async def put_one(i: int) -> None:
        url = f"{pods_url}/{fetched[i]['metadata']['name']}/status"
        written[i] = await _send(http, "PUT", url, puts[i], put_headers, 200)

    await _timed("status_put", child, args, params, closed_loop, put_one)
    again = [orjson.dumps(dict(p, status=not_ready_status(p["status"]))) for p in written]

    async def put_again(i: int) -> None:
        url = f"{pods_url}/{written[i]['metadata']['name']}/status"
        await _send(http, "PUT", url, again[i], put_headers, 200)

    await _timed("status_put_again", child, args, params, closed_loop, put_again)
    await _token_requests(http, pods_url, fetched, child, args, params, closed_loop)


def not_ready_status(status: dict[str, Any]) -> dict[str, Any]:
    """A later write by the same node: its container failed a readiness
    probe, so Ready and ContainersReady turn False (new transition times),
    the rest of what the node owns is as it wrote it before."""
    later = "2026-01-01T00:01:00Z"
    conds = [dict(c, status="False", lastTransitionTime=later) if c.get("type") in ("Ready", "ContainersReady")
             else c for c in status.get("conditions") or []]
    containers = [dict(c, ready=False) for c in status.get("containerStatuses") or []]
    return {**status, "conditions": conds, "containerStatuses": containers}


async def _token_requests(http: aiohttp.ClientSession, pods_url: str, pods: list[dict[str, Any]],
                          child: CorralChild, args: argparse.Namespace, params: dict[str, Any],
                          closed_loop: Any) -> None:
    """One token per pod, bound to it, with the agent's default lifetime
    (a ServiceAccount of the bench's own: the namespace's ``default`` one
    comes from a controller, some time after the namespace)."""
    sa_url = pods_url.rsplit("/", 1)[0] + "/serviceaccounts"
    sa = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "bench-sa"}}
    await _send(http, "POST", sa_url, orjson.dumps(sa), {}, 201)
    bodies = [orjson.dumps({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                            "spec": {"expirationSeconds": 3607,
                                     "boundObjectRef": {"apiVersion": "v1", "kind": "Pod",
                                                        "name": p["metadata"]["name"],
                                                        "uid": p["metadata"]["uid"]}}})
              for p in pods]
    headers = {"User-Agent": PUT_AGENT, "Content-Type": "application/json"}

    async def token_one(i: int) -> None:
        got = await _send(http, "POST", f"{sa_url}/bench-sa/token", bodies[i], headers, 201)
        if not (got.get("status") or {}).get("token"):
            raise StatusBenchError(f"TokenRequest for pod {i}: no token in the reply")

    await _timed("token_request", child, args, params, closed_loop, token_one)


async def _timed(op: str, child: CorralChild, args: argparse.Namespace, params: dict[str, Any],
                 closed_loop: Any, one: Any) -> None:
    server, me = CpuMeter(child.pid), CpuMeter(os.getpid())
    server.start(), me.start()
    rate = await closed_loop(args.clients, args.count, one)
    server_s = server.seconds()
    emit(BENCH, f"server_cpu_ms_per_{op}", server_s * 1000 / args.count, "ms", op=op, requests=args.count,
         per_second=round(rate, 1), server_cpu_pct=server.percent(), client_cpu_pct=me.percent(), **params)
