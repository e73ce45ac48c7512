"""Server CPU per pod status write and per TokenRequest of two source trees
at once (the figures of bench/api_status.py, A against B), and per pod
create and binding (a pod's first two writes in the scheduler bench's
end_to_end mode; the hollow node's status PATCH is its third, sent as the
node itself, system:node:NAME, unless ``--no-node-identity``).

    .venv/bin/python bench/api_status_ab.py --a /tmp/base/src --b src --count 2000 --chunk 100
    .venv/bin/python bench/api_status_ab.py --a /tmp/base/src --b src --server-workers 2

Runs one ``corral server`` per tree (PYTHONPATH chosen per child), gives
both the same pods, then sends each phase's requests in chunks of
``--chunk``, alternating the servers chunk by chunk (and which goes first),
and counts each server's CPU over its own chunks only. On a machine shared
with other work, consecutive runs of api.py moved by ±20 % with the load;
here both trees see the same load within seconds of each other, so a
difference of a few percent shows. One JSON line per tree and figure
(``tree`` a or b, ``src``), then one per figure with ``b_vs_a_pct``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import CorralChild, CpuMeter, corral_child, emit  # noqa: E402
from api import closed_loop, make_namespace, session  # noqa: E402
from api_status import (  # noqa: E402
    NODE,
    PATCH_AGENT,
    PUT_AGENT,
    _create_pods,
    _send,
    bench_node,
    not_ready_status,
    pod,
    running_status,
)

from corral.agent.localidentity import ensure_node_tokens  # noqa: E402

BENCH = "api_status_ab"
One = Callable[[int], Awaitable[Any]]


class Side:
    """One server, its client session and the pods it was given."""

    def __init__(self, name: str, src: str, child: CorralChild, http: aiohttp.ClientSession) -> None:
        self.name, self.src, self.child, self.http = name, src, child, http
        self.cpu_s: dict[str, float] = {}
        self.pods_url = ""

    async def prepare(self, count: int, clients: int, node_token: str) -> dict[str, One]:
        """The pods and request bodies of every phase; returns one request
        function per figure, each taking a pod's index. ``create`` and
        ``binding`` are a pod's first two writes in the scheduler bench's
        end_to_end mode (a controller's create, the scheduler's binding,
        both as the admin); the hollow node's PATCH goes under the node's
        own identity (``node_token``, system:node:NODE) as there, so the
        node authorizer and the fair-share lanes are on its path."""
        ns_url = (await make_namespace(self.http, self.child.url, "bench-status")).rsplit("/", 1)[0]
        self.pods_url = url = f"{ns_url}/pods"
        hollow = await _create_pods(self.http, url, "hollow", count, clients, closed_loop)
        agent = await _create_pods(self.http, url, "agent", count, clients, closed_loop)
        sa = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "bench-sa"}}
        await _send(self.http, "POST", f"{ns_url}/serviceaccounts", orjson.dumps(sa), {}, 201)
        patch_h = {"User-Agent": PATCH_AGENT, "Content-Type": "application/merge-patch+json"}
        if node_token:
            patch_h["Authorization"] = f"Bearer {node_token}"
        create_h = {"User-Agent": "kube-controller-manager"}
        bind_h = {"User-Agent": "corral-scheduler"}

        def unscheduled(i: int) -> bytes:
            body = pod(f"sched-{i}")
            del body["spec"]["nodeName"]
            body["spec"]["schedulerName"] = "bench-nobody"  # the server's scheduler leaves it alone
            return orjson.dumps(body)

        async def create(i: int) -> None:
            await _send(self.http, "POST", url, unscheduled(i), create_h, 201)

        async def binding(i: int) -> None:
            body = orjson.dumps({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": f"sched-{i}"},
                                 "target": {"apiVersion": "v1", "kind": "Node", "name": NODE}})
            await _send(self.http, "POST", f"{url}/sched-{i}/binding", body, bind_h, 201)
        put_h = {"User-Agent": PUT_AGENT, "Content-Type": "application/json"}
        written: list[dict[str, Any]] = [{}] * count

        async def patch(i: int) -> None:
            body = orjson.dumps({"status": running_status(hollow[i])})
            await _send(self.http, "PATCH", f"{url}/{hollow[i]['metadata']['name']}/status", body, patch_h, 200)

        async def put(i: int) -> None:
            p = agent[i]
            body = orjson.dumps(dict(p, status={**running_status(p), "qosClass": p["status"].get("qosClass")}))
            written[i] = await _send(self.http, "PUT", f"{url}/{p['metadata']['name']}/status", body, put_h, 200)

        async def put_again(i: int) -> None:
            p = written[i]
            body = orjson.dumps(dict(p, status=not_ready_status(p["status"])))
            await _send(self.http, "PUT", f"{url}/{p['metadata']['name']}/status", body, put_h, 200)

        async def token(i: int) -> None:
            meta = agent[i]["metadata"]
            body = orjson.dumps({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                                 "spec": {"expirationSeconds": 3607, "boundObjectRef": {
                                     "apiVersion": "v1", "kind": "Pod", "name": meta["name"], "uid": meta["uid"]}}})
            await _send(self.http, "POST", f"{ns_url}/serviceaccounts/bench-sa/token", body, put_h, 201)

        return {"create": create, "binding": binding, "status_patch": patch, "status_put": put, "status_put_again": put_again, "token_request": token}

    async def chunk(self, figure: str, one: One, start: int, n: int, clients: int) -> None:
        meter = CpuMeter(self.child.pid)
        await closed_loop(clients, n, lambda i: one(start + i))
        self.cpu_s[figure] = self.cpu_s.get(figure, 0.0) + meter.seconds()


async def run(sides: list[Side], args: argparse.Namespace) -> None:
    async with contextlib.AsyncExitStack() as stack:
        for side in sides:  # the node first: the pods are bound to it
            await stack.enter_async_context(bench_node(side.http, side.child))
        phases = [await side.prepare(args.count, args.clients, await node_token(side, args.node_identity))
                  for side in sides]
        for figure in phases[0]:
            for n_chunk, start in enumerate(range(0, args.count, args.chunk)):
                n = min(args.chunk, args.count - start)
                order = [0, 1] if n_chunk % 2 == 0 else [1, 0]
                for k in order:
                    await sides[k].chunk(figure, phases[k][figure], start, n, args.clients)
    params = {"count": args.count, "chunk": args.chunk, "clients": args.clients,
              "node_identity": args.node_identity, "server_workers": args.server_workers}
    for figure in phases[0]:
        per = [s.cpu_s[figure] * 1000 / args.count for s in sides]
        for side, ms in zip(sides, per, strict=True):
            emit(BENCH, f"server_cpu_ms_per_{figure}", round(ms, 4), "ms", tree=side.name, src=side.src, **params)
        emit(BENCH, f"b_vs_a_pct_{figure}", round(100 * (per[1] - per[0]) / per[0], 2), "%",
             a_ms=round(per[0], 4), b_ms=round(per[1], 4), **params)


async def node_token(side: Side, wanted: bool) -> str:
    """A token of system:node:NODE added to the side's token file, once the
    server has read it (it re-reads the file about once a second); "" when
    not ``wanted``."""
    if not wanted:
        return ""
    token = ensure_node_tokens(side.child.data_dir / "tokens.csv", [NODE], "api-status-ab")[NODE]
    headers = {"Authorization": f"Bearer {token}"}
    for _ in range(100):
        async with side.http.get(f"{side.child.url}/api/v1/nodes/{NODE}", headers=headers) as resp:
            if resp.status != 401:
                return token
        await asyncio.sleep(0.1)
    raise RuntimeError(f"tree {side.name}: the server did not accept the node token")


async def main_async(children: list[tuple[str, str, CorralChild]], args: argparse.Namespace) -> None:
    async with contextlib.AsyncExitStack() as stack:
        sides = []
        for name, src, child in children:
            http = await stack.enter_async_context(session(child.ssl_context(), child.token(), args.clients))
            sides.append(Side(name, src, child, http))
        await run(sides, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", required=True, help="PYTHONPATH of tree a (its src directory)")
    parser.add_argument("--b", required=True, help="PYTHONPATH of tree b")
    parser.add_argument("--count", type=int, default=2000, help="requests per figure and tree")
    parser.add_argument("--chunk", type=int, default=100, help="requests per turn of one tree")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--node-identity", action=argparse.BooleanOptionalAction, default=True,
                        help="send the hollow node's status PATCH as system:node:NODE (as end_to_end does)")
    parser.add_argument("--server-workers", type=int, default=1,
                        help="API worker processes of each server (its CPU is counted whole)")
    args = parser.parse_args()
    if args.count < 1 or args.chunk < 1:
        parser.error("--count and --chunk must be positive")
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    saved = os.environ.get("PYTHONPATH")
    with contextlib.ExitStack() as stack:
        children = []
        for name, src in (("a", args.a), ("b", args.b)):
            os.environ["PYTHONPATH"] = str(Path(src).resolve())  # the child inherits it at spawn
            extra = ["--api-workers", str(args.server_workers)] if args.server_workers > 1 else []
            children.append((name, src, stack.enter_context(corral_child("server", *extra))))
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved
        asyncio.run(main_async(children, args))


if __name__ == "__main__":
    main()
