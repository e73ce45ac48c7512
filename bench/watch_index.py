"""Server CPU per pod write while many kubelet-style watches are open: each of
``--watchers`` watches pods of all namespaces with
``fieldSelector=spec.nodeName=node-<i>``, as a kubelet does, and ``--writes``
pods are created, each bound to one of those nodes. Prints one JSON object per
figure.

    .venv/bin/python bench/watch_index.py [--watchers 2000] [--writes 2000]
        [--watch-procs 4] [--clients 16]

With ``--fanout`` every watcher watches the pods' namespace instead, so each
write is sent to all of them (use ``--clients 1`` and fewer writes).

``server_ms_per_write`` is the server's CPU over the write phase (until every
watcher has its events) divided by the writes; without indexed dispatch it
grows with the number of watchers, with it it should not. Every watcher must
receive an ADDED for exactly the pods bound to its node (and no event of
another node's pod), or the benchmark fails.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import multiprocessing.connection
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CorralChild, CpuMeter, corral_child, emit, raise_fd_limit  # noqa: E402
from api import BenchError, closed_loop, collect, request, session  # noqa: E402

BENCH = "watch_index"
NAMESPACE = "bench-index"


def pod(i: int, nodes: int) -> bytes:
    return orjson.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"p-{i}"},
        "spec": {"nodeName": f"node-{i % nodes}",
                 "containers": [{"name": "app", "image": "bench"}]},
    })


def watcher_main(conn: multiprocessing.connection.Connection, base: str, ca_file: str, token: str,
                 nodes: list[int], fanout: bool) -> None:
    """Opens one watch per node of ``nodes`` (with ``fanout``, of the whole
    namespace instead), says "ready", then reports ("got", per-node counts)
    whenever asked with "count"."""
    try:
        asyncio.run(_watchers(conn, base, ca_file, token, nodes, fanout))
    except BaseException as exc:
        conn.send(("error", repr(exc)))
        raise


async def _watchers(conn: multiprocessing.connection.Connection, base: str, ca_file: str,
                    token: str, nodes: list[int], fanout: bool) -> None:
    counts = dict.fromkeys(nodes, 0)
    opened = 0
    gate = asyncio.Semaphore(50)

    async def watch(http: aiohttp.ClientSession, node: int) -> None:
        nonlocal opened
        url = (f"{base}/api/v1/namespaces/{NAMESPACE}/pods?watch=1&timeoutSeconds=3600" if fanout else
               f"{base}/api/v1/pods?watch=1&timeoutSeconds=3600&fieldSelector=spec.nodeName%3Dnode-{node}")
        async with gate:
            resp = await http.get(url)
        try:
            if resp.status != 200:
                raise BenchError(f"watch -> {resp.status}: {(await resp.read())[:300]!r}")
            opened += 1
            if opened == len(nodes):
                conn.send(("ready", len(nodes)))
            async for line in resp.content:
                event = orjson.loads(line)
                if not fanout and event["object"]["spec"]["nodeName"] != f"node-{node}":
                    raise BenchError(f"node-{node} got an event of another node: {line[:200]!r}")
                if event["type"] == "ADDED":
                    counts[node] += 1
        finally:
            resp.release()

    import ssl

    ctx = ssl.create_default_context(cafile=ca_file)
    async with session(ctx, token, len(nodes)) as http:
        tasks = [asyncio.create_task(watch(http, n)) for n in nodes]
        loop = asyncio.get_running_loop()
        while True:
            if await loop.run_in_executor(None, conn.poll, 0.5):
                msg = await loop.run_in_executor(None, conn.recv)
                if msg == "stop":
                    break
                conn.send(("got", counts))
            for t in tasks:
                if t.done() and t.exception():
                    raise t.exception()  # type: ignore[misc]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def start_watchers(child: CorralChild, watchers: int, procs: int, fanout: bool) -> list[tuple[Any, Any]]:
    mp = multiprocessing.get_context("spawn")
    workers = []
    for p in range(procs):
        parent, child_end = mp.Pipe()
        proc = mp.Process(target=watcher_main, daemon=True, args=(
            child_end, child.url, str(child.ca_file), child.token(), list(range(p, watchers, procs)), fanout))
        proc.start()
        workers.append((proc, parent))
    return workers


def delivered(workers: list[tuple[Any, Any]]) -> dict[int, int]:
    for _, conn in workers:
        conn.send("count")
    out: dict[int, int] = {}
    for msg in collect(workers, "got", 30.0):
        out.update(msg[1])
    return out


async def run(child: CorralChild, args: argparse.Namespace) -> None:
    async with session(child.ssl_context(), child.token(), args.clients) as http:
        body = orjson.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
        await request(http, "POST", f"{child.url}/api/v1/namespaces", body)
        pods = f"{child.url}/api/v1/namespaces/{NAMESPACE}/pods"
        workers = start_watchers(child, args.watchers, args.watch_procs, args.fanout)
        try:
            t = time.monotonic()
            await asyncio.to_thread(collect, workers, "ready", 300.0)
            open_s = time.monotonic() - t
            await asyncio.sleep(2.0)  # let the connection storm settle
            server = CpuMeter(child.pid)
            t = time.monotonic()
            await closed_loop(args.clients, args.writes, lambda i: request(http, "POST", pods, pod(i, args.watchers)))
            if args.fanout:
                want = dict.fromkeys(range(args.watchers), args.writes)
            else:
                want = {n: len(range(n, args.writes, args.watchers)) for n in range(args.watchers)}
            deadline = time.monotonic() + 120
            while (got := await asyncio.to_thread(delivered, workers)) != want:
                if time.monotonic() > deadline:
                    wrong = {n: (got.get(n), c) for n, c in want.items() if got.get(n) != c}
                    raise BenchError(f"watchers missing events (got, want): {list(wrong.items())[:10]}")
                await asyncio.sleep(0.2)
            wall = time.monotonic() - t
            pct = server.percent()
        finally:
            for _proc, conn in workers:
                try:
                    conn.send("stop")
                except OSError:
                    pass
            for proc, _ in workers:
                proc.join(5)
                if proc.is_alive():
                    proc.terminate()
    params = {"fanout": args.fanout, "watchers": args.watchers, "writes": args.writes, "clients": args.clients,
              "server_cpu_pct": pct, "wall_s": round(wall, 2), "watch_open_s": round(open_s, 2)}
    emit(BENCH, "server_ms_per_write", round(pct * wall * 10 / args.writes, 3), "ms", **params)
    emit(BENCH, "writes_per_second", round(args.writes / wall, 1), "1/s", **params)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--watchers", type=int, default=2000, help="watches, one per node")
    parser.add_argument("--writes", type=int, default=2000, help="pods created, round-robin over nodes")
    parser.add_argument("--watch-procs", type=int, default=4)
    parser.add_argument("--clients", type=int, default=16, help="concurrent writers")
    parser.add_argument("--fanout", action="store_true",
                        help="every watcher watches the whole namespace (each write goes to all)")
    parser.add_argument("--keep", action="store_true", help="keep the server's data dir")
    args = parser.parse_args(argv)
    raise_fd_limit(args.watchers * 2 + 1000)
    with corral_child("server", keep=args.keep) as child:
        asyncio.run(run(child, args))


if __name__ == "__main__":
    main()
