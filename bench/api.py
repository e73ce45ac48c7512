"""The API server over HTTPS: create/get/list throughput, write latency at a
fixed rate, and one watch event fanned out to many watchers. Prints one JSON
object per figure.

    .venv/bin/python bench/api.py [--clients 32] [--count 5000] [--lists 200]
        [--list-size 100] [--rate 500] [--seconds 10] [--watchers 1000]
        [--watch-procs 4] [--rounds 5] [--only creates,gets,lists,write,watch,status]
        [--client aiohttp|wrk] [--wrk-seconds 5] [--server-workers 1]

A real `corral server` (SQLite store, TLS, token, controllers and scheduler
idle) runs as a child process, so it has its own interpreter and core as in
production; this process is the load generator, with aiohttp clients sharing a
keep-alive connection pool. Watchers run in ``--watch-procs`` processes so
that reading 1,000 streams does not fall on one event loop.

With ``--client wrk`` the creates and gets phases run wrk (C, about a quarter
of aiohttp's CPU per request) with bench/api_wrk.lua for a fixed time, so a
server of ``--server-workers`` processes is not starved of the second core by
its own load generator.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import multiprocessing.connection
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    CorralChild,
    CpuMeter,
    corral_child,
    emit,
    max_by_second,
    percentile,
    process_tree,
    raise_fd_limit,
    rss_mb,
    summary_ms,
)
from api_status import status_writes  # noqa: E402

BENCH = "api"
DATA = {"key": "v" * 64}
FANOUT_PREFIX = "fan-"
WRK_SCRIPT = Path(__file__).resolve().with_name("api_wrk.lua")
WRK_MARK = "WRK_SUMMARY "


class BenchError(RuntimeError):
    """A request the benchmark relies on did not succeed."""


def session(url_ssl: ssl.SSLContext, token: str, connections: int) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(ssl=url_ssl, limit=connections, limit_per_host=connections)
    return aiohttp.ClientSession(
        connector=connector,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=30),
    )


def configmap(name: str) -> bytes:
    return orjson.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                         "metadata": {"name": name}, "data": DATA})


async def request(http: aiohttp.ClientSession, method: str, url: str, body: bytes | None = None,
                  expect: tuple[int, ...] = (200, 201)) -> bytes:
    async with http.request(method, url, data=body) as resp:
        payload = await resp.read()
        if resp.status not in expect:
            raise BenchError(f"{method} {url} -> {resp.status}: {payload[:300]!r}")
        return payload


async def closed_loop(clients: int, count: int, one: Callable[[int], Awaitable[Any]]) -> float:
    """``clients`` tasks issue ``count`` requests in all, each as soon as its
    previous answer is back; returns requests per second."""
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        while next_index < count:
            i = next_index
            next_index += 1
            await one(i)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return count / (time.perf_counter() - started)


async def make_namespace(http: aiohttp.ClientSession, base: str, name: str) -> str:
    body = orjson.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    await request(http, "POST", f"{base}/api/v1/namespaces", body)
    return f"{base}/api/v1/namespaces/{name}/configmaps"


def cpu_busy(server: CpuMeter, client: CpuMeter) -> dict[str, Any]:
    """Percent of one core used by the server's processes (in all, and each:
    the store's process first, then its API workers) and by this load
    generator with its children (wrk)."""
    busy: dict[str, Any] = {"server_cpu_pct": server.percent(), "client_cpu_pct": client.percent()}
    by_process = server.percent_by_process()
    if len(by_process) > 1:
        busy["server_cpu_pct_by_process"] = by_process
    return busy


def server_cpu_ms_per(metric: str, server_s: float, requests: int, **params: Any) -> None:
    """CPU per request of the whole server tree: what to compare runs by,
    as it moves far less with the machine's load than the rates do."""
    emit(BENCH, metric, server_s * 1000 / requests, "ms", requests=requests, **params)


async def throughput(http: aiohttp.ClientSession, child: CorralChild,
                     args: argparse.Namespace) -> None:
    """Closed-loop phases; each line also says how busy the server (all its
    processes) and this load generator were (percent of one core)."""
    if {"creates", "gets"} & args.only:
        if args.client == "wrk":
            await wrk_throughput(http, child, args)
        else:
            await aiohttp_throughput(http, child, args)
    if "lists" in args.only:
        server, me = CpuMeter(child.pid), CpuMeter(os.getpid())
        cms = await make_namespace(http, child.url, "bench-list")
        await closed_loop(args.clients, args.list_size,
                          lambda i: request(http, "POST", cms, configmap(f"cm-{i}")))
        server.start(), me.start()
        rate = await closed_loop(args.clients, args.lists, lambda i: request(http, "GET", cms))
        emit(BENCH, "lists_per_second", rate, "1/s", clients=args.clients, count=args.lists,
             list_size=args.list_size, server_workers=args.server_workers,
             server_cpu_pct=server.percent(), client_cpu_pct=me.percent())


async def aiohttp_throughput(http: aiohttp.ClientSession, child: CorralChild,
                             args: argparse.Namespace) -> None:
    server, me = CpuMeter(child.pid), CpuMeter(os.getpid())
    params = {"client": "aiohttp", "clients": args.clients, "count": args.count,
              "server_workers": args.server_workers}
    cms = await make_namespace(http, child.url, "bench-create")
    server.start(), me.start()
    rate = await closed_loop(args.clients, args.count,
                             lambda i: request(http, "POST", cms, configmap(f"cm-{i}")))
    server_s = server.seconds()
    if "creates" in args.only:
        emit(BENCH, "creates_per_second", rate, "1/s", **params, **cpu_busy(server, me))
        server_cpu_ms_per("server_cpu_ms_per_create", server_s, args.count, **params)
    if "gets" in args.only:
        server.start(), me.start()
        rate = await closed_loop(args.clients, args.count,
                                 lambda i: request(http, "GET", f"{cms}/cm-{i}"))
        server_s = server.seconds()
        emit(BENCH, "gets_per_second", rate, "1/s", **params, **cpu_busy(server, me))
        server_cpu_ms_per("server_cpu_ms_per_get", server_s, args.count, **params)


# -- wrk as the load generator ------------------------------------------------


@dataclass(frozen=True)
class WrkSummary:
    """One wrk run, every response of which was the expected one."""

    requests: int
    seconds: float
    latency_ms: dict[str, float]  # p50_ms, p99_ms, max_ms

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def parse_wrk_summary(output: str, what: str) -> WrkSummary:
    """The line api_wrk.lua's done() prints. Any unexpected status, socket
    error or timeout fails the run (BenchError) instead of being averaged in:
    a rate of errors is not a rate of creates."""
    lines = [line[len(WRK_MARK):] for line in output.splitlines() if line.startswith(WRK_MARK)]
    if len(lines) != 1:
        raise BenchError(f"{what}: wrk printed {len(lines)} {WRK_MARK.strip()} lines, not one:\n"
                         f"{output[-2000:]}")
    try:
        raw = orjson.loads(lines[0])
        requests, ok, unexpected = int(raw["requests"]), int(raw["ok"]), int(raw["unexpected"])
        errors = {str(k): int(v) for k, v in raw["errors"].items() if v}
        seconds = int(raw["duration_us"]) / 1e6
        latency = {f"{k}_ms": round(int(raw["latency_us"][k]) / 1000, 3) for k in ("p50", "p99", "max")}
        first = str(raw["first_unexpected"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BenchError(f"{what}: malformed wrk summary {lines[0][:300]!r}: {exc!r}") from None
    if unexpected or errors:
        raise BenchError(f"{what}: of {requests} requests {unexpected} had an unexpected status"
                         f" (first: {first[:300]!r}), socket errors and timeouts: {errors}")
    if requests == 0 or ok != requests or seconds <= 0:
        raise BenchError(f"{what}: wrk completed {requests} requests in {seconds} s, {ok} as expected")
    return WrkSummary(requests=requests, seconds=seconds, latency_ms=latency)


def check_created(names: Iterable[str], prefix: str, created: int, in_flight: int, what: str) -> int:
    """The server must list every create wrk saw answered with 201, and at
    most ``in_flight`` more (requests still open when wrk stopped)."""
    listed = sum(1 for name in names if name.startswith(prefix))
    if not created <= listed <= created + in_flight:
        raise BenchError(f"{what}: wrk saw {created} creates answered, the server lists {listed}"
                         f" ConfigMaps named {prefix}* (at most {in_flight} more may be in flight)")
    return listed


def wrk_command(args: argparse.Namespace, url: str, seconds: int, *script_args: str) -> list[str]:
    return [args.wrk, "-t", str(args.wrk_threads), "-c", str(args.clients), "-d", f"{seconds}s",
            "--timeout", "30s", "-s", str(WRK_SCRIPT), url, "--", *script_args]


async def run_wrk(child: CorralChild, args: argparse.Namespace, url: str, seconds: int,
                  *script_args: str) -> WrkSummary:
    """One wrk run, as a child of this process (so this process's CpuMeter
    counts it); the token goes in the environment, not on a command line."""
    what = f"wrk {' '.join(script_args[:2])}"
    env = {**os.environ, "CORRAL_BENCH_TOKEN": child.token()}
    done = await asyncio.to_thread(subprocess.run, wrk_command(args, url, seconds, *script_args),
                                   env=env, capture_output=True, text=True, timeout=seconds + 120)
    if done.returncode != 0:
        raise BenchError(f"{what}: wrk exited with {done.returncode}:\n{done.stderr[-2000:]}"
                         f"{done.stdout[-2000:]}")
    return parse_wrk_summary(done.stdout, what)


async def wrk_throughput(http: aiohttp.ClientSession, child: CorralChild,
                         args: argparse.Namespace) -> None:
    """Creates for ``--wrk-seconds`` after ``--wrk-warmup`` s of them (new
    names each), checked against a list of the namespace; then gets of
    every name created, for as long."""
    cms = await make_namespace(http, child.url, "bench-create")
    server, me = CpuMeter(child.pid), CpuMeter(os.getpid())
    warm = await run_wrk(child, args, cms, args.wrk_warmup, "create", "warm")
    server.start(), me.start()
    run = await run_wrk(child, args, cms, args.wrk_seconds, "create", "run")
    server_s, busy = server.seconds(), cpu_busy(server, me)
    listed = orjson.loads(await request(http, "GET", cms))["items"]
    names = [item["metadata"]["name"] for item in listed]
    check_created(names, "cm-warm-", warm.requests, args.clients, "wrk warm-up creates")
    check_created(names, "cm-run-", run.requests, args.clients, "wrk creates")
    params = {"client": "wrk", "clients": args.clients, "wrk_threads": args.wrk_threads,
              "seconds": args.wrk_seconds, "server_workers": args.server_workers}
    if "creates" in args.only:
        emit(BENCH, "creates_per_second", run.rate, "1/s", **params, requests=run.requests,
             **run.latency_ms, **busy)
        server_cpu_ms_per("server_cpu_ms_per_create", server_s, run.requests, **params)
    if "gets" in args.only:
        ours = [n for n in names if n.startswith(("cm-warm-", "cm-run-"))]
        with tempfile.NamedTemporaryFile("w", prefix="names-", dir=child.data_dir.parent) as f:
            f.write("\n".join(ours) + "\n")
            f.flush()
            server.start(), me.start()
            got = await run_wrk(child, args, cms, args.wrk_seconds, "get", "run", f.name,
                                str(args.wrk_threads))
            server_s, busy = server.seconds(), cpu_busy(server, me)
        emit(BENCH, "gets_per_second", got.rate, "1/s", **params, requests=got.requests,
             names=len(ours), **got.latency_ms, **busy)
        server_cpu_ms_per("server_cpu_ms_per_get", server_s, got.requests, **params)


async def open_pool(http: aiohttp.ClientSession, base: str, connections: int) -> None:
    """Open (TLS handshake included) every connection of the pool before the
    timed phase, as a long-running client has its keep-alive connections
    open already; ``--cold-connections`` times the handshakes too."""
    await asyncio.gather(*(request(http, "GET", f"{base}/version") for _ in range(connections)))


async def open_loop_writes(http: aiohttp.ClientSession, base: str, rate: float,
                           seconds: float) -> list[tuple[float, float]]:
    """One create every 1/rate s whatever the answers do; each latency runs
    from the request's scheduled time, so a stall that delays the requests
    behind it counts against all of them (no coordinated omission)."""
    cms = await make_namespace(http, base, "bench-rate")
    latencies: list[tuple[float, float]] = []  # (scheduled offset s, latency ms)
    failures: list[BaseException] = []

    async def one(i: int, scheduled: float) -> None:
        try:
            await request(http, "POST", cms, configmap(f"cm-{i}"))
        except Exception as exc:
            failures.append(exc)
            return
        latencies.append((scheduled - start, (time.perf_counter() - scheduled) * 1000))

    tasks = []
    start = time.perf_counter() + 0.05
    for i in range(int(rate * seconds)):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, scheduled)))
    await asyncio.gather(*tasks)
    if failures:
        raise BenchError(f"{len(failures)} of {len(tasks)} writes failed, first: {failures[0]}")
    return latencies


# -- watch fan-out ----------------------------------------------------------


def watcher_main(conn: multiprocessing.connection.Connection, url: str, ca_file: str, token: str,
                 count: int, rounds: int) -> None:
    """A watcher process: opens ``count`` watches, says "ready", then for
    every fan-out object seen by all its watchers sends (name, receive times
    on CLOCK_MONOTONIC, which all processes of one machine share)."""
    try:
        asyncio.run(_watchers(conn, url, ca_file, token, count, rounds))
    except BaseException as exc:  # tell the parent instead of dying silently
        conn.send(("error", repr(exc)))
        raise


async def _watchers(conn: multiprocessing.connection.Connection, url: str, ca_file: str,
                    token: str, count: int, rounds: int) -> None:
    seen: dict[str, list[float]] = {}
    done = asyncio.Event()
    opened = 0
    gate = asyncio.Semaphore(50)  # bounded TLS handshakes in flight

    async def watch(http: aiohttp.ClientSession) -> None:
        nonlocal opened
        async with gate:
            resp = await http.get(url)
        try:
            if resp.status != 200:
                raise BenchError(f"watch -> {resp.status}: {(await resp.read())[:300]!r}")
            opened += 1
            if opened == count:
                conn.send(("ready", count))
            async for line in resp.content:
                at = time.monotonic()
                event = orjson.loads(line)
                name = event["object"]["metadata"]["name"]
                if not name.startswith(FANOUT_PREFIX):
                    continue  # objects controllers add to a new namespace (kube-root-ca.crt)
                times = seen.setdefault(name, [])
                times.append(at)
                if len(times) == count:
                    conn.send(("got", name, times))
                    if len(seen) == rounds:
                        done.set()
        finally:
            resp.release()

    ctx = ssl.create_default_context(cafile=ca_file)
    async with session(ctx, token, count) as http:
        tasks = [asyncio.create_task(watch(http)) for _ in range(count)]
        finished = asyncio.create_task(done.wait())
        await asyncio.wait([finished, *tasks], return_when=asyncio.FIRST_COMPLETED)
        for t in tasks:
            if t.done() and t.exception():
                raise t.exception()  # type: ignore[misc]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def start_watchers(child: CorralChild, namespace_url: str, resource_version: str, watchers: int,
                   procs: int, rounds: int) -> list[tuple[Any, multiprocessing.connection.Connection]]:
    mp = multiprocessing.get_context("spawn")
    url = f"{namespace_url}?watch=1&resourceVersion={resource_version}&timeoutSeconds=3600"
    workers = []
    for p in range(procs):
        count = watchers // procs + (1 if p < watchers % procs else 0)
        parent, child_end = mp.Pipe()
        proc = mp.Process(target=watcher_main, daemon=True,
                          args=(child_end, url, str(child.ca_file), child.token(), count, rounds))
        proc.start()
        workers.append((proc, parent))
    return workers


def collect(workers: list[tuple[Any, Any]], kind: str, timeout: float) -> list[Any]:
    """One message of ``kind`` from every worker (an "error" from any fails)."""
    got = []
    deadline = time.monotonic() + timeout
    for proc, conn in workers:
        if not conn.poll(max(0.0, deadline - time.monotonic())):
            raise BenchError(f"watcher process {proc.pid} sent no {kind!r} within {timeout}s")
        msg = conn.recv()
        if msg[0] != kind:
            raise BenchError(f"watcher process {proc.pid}: {msg}")
        got.append(msg)
    return got


async def watch_fanout(http: aiohttp.ClientSession, child: CorralChild,
                       args: argparse.Namespace) -> None:
    cms = await make_namespace(http, child.url, "bench-watch")
    rv = orjson.loads(await request(http, "GET", cms))["metadata"]["resourceVersion"]
    workers = start_watchers(child, cms, rv, args.watchers, args.watch_procs, args.rounds)
    try:
        t = time.monotonic()
        await asyncio.to_thread(collect, workers, "ready", 120.0)
        open_s = time.monotonic() - t
        await asyncio.sleep(1.0)  # let the server settle after the connection storm
        all_ms: list[float] = []
        round_max: list[float] = []
        for r in range(args.rounds):
            t0 = time.monotonic()
            await request(http, "POST", cms, configmap(f"{FANOUT_PREFIX}{r}"))
            msgs = await asyncio.to_thread(collect, workers, "got", 30.0)
            ms = [(at - t0) * 1000 for msg in msgs for at in msg[2]]
            all_ms.extend(ms)
            round_max.append(max(ms))
            await asyncio.sleep(0.5)
    finally:
        for proc, _ in workers:
            proc.terminate()
        for proc, _ in workers:
            proc.join(5)
            if proc.is_alive():
                proc.kill()
    stats = summary_ms(all_ms)
    emit(BENCH, "watch_fanout_ms", percentile(round_max, 50), "ms", watchers=args.watchers,
         watch_procs=args.watch_procs, rounds=args.rounds, round_max_ms=[round(m, 1) for m in round_max],
         watch_open_s=round(open_s, 2), **stats)


async def run(child: CorralChild, args: argparse.Namespace) -> None:
    ctx = child.ssl_context()
    async with session(ctx, child.token(), args.clients) as http:
        await throughput(http, child, args)
    if "status" in args.only:  # not in the default set: --only status (see api_status.py)
        async with session(ctx, child.token(), args.clients) as http:
            await status_writes(http, child, args, closed_loop, make_namespace)
    if "write" in args.only:
        async with session(ctx, child.token(), args.rate_connections) as http:
            if not args.cold_connections:
                await open_pool(http, child.url, args.rate_connections)
            server = CpuMeter(child.pid)
            timed = await open_loop_writes(http, child.url, args.rate, args.seconds)
        lat = [ms for _, ms in timed]
        params = {"rate": args.rate, "seconds": args.seconds, "writes": len(lat),
                  "connections": args.rate_connections,
                  "pool": "cold" if args.cold_connections else "warm", "server_cpu_pct": server.percent()}
        stats = summary_ms(lat)
        emit(BENCH, "write_p99_ms", stats["p99_ms"], "ms", **params, max_ms=stats["max_ms"],
             max_ms_by_second=max_by_second(timed))
        emit(BENCH, "write_p50_ms", stats["p50_ms"], "ms", **params)
    if "watch" in args.only:
        async with session(ctx, child.token(), 4) as http:
            await watch_fanout(http, child, args)
    hwm = _hwm_mb(child.pid)
    tree_mb = round(sum(rss_mb(pid) for pid in process_tree(child.pid)), 1)
    emit(BENCH, "server_rss_mb", rss_mb(child.pid), "MiB", peak_mb=hwm, tree_rss_mb=tree_mb,
         clients=args.clients, count=args.count, rate=args.rate, watchers=args.watchers,
         server_workers=args.server_workers, phases=sorted(args.only))


def _hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32, help="concurrent closed-loop clients")
    parser.add_argument("--count", type=int, default=5000, help="creates (and gets) in all")
    parser.add_argument("--lists", type=int, default=200, help="list requests in all")
    parser.add_argument("--list-size", type=int, default=100, help="ConfigMaps in the listed namespace")
    parser.add_argument("--rate", type=float, default=500.0, help="open-loop creates per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="open-loop duration")
    parser.add_argument("--rate-connections", type=int, default=64)
    parser.add_argument("--cold-connections", action="store_true",
                        help="open the write phase's connections inside the timed phase (TLS handshakes count)")
    parser.add_argument("--watchers", type=int, default=1000)
    parser.add_argument("--watch-procs", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5, help="fan-out writes, one after another")
    parser.add_argument("--only", default="creates,gets,lists,write,watch",
                        help="comma-separated phases to run")
    parser.add_argument("--keep", action="store_true", help="keep the server's data dir and log")
    parser.add_argument("--client", choices=("aiohttp", "wrk"), default="aiohttp",
                        help="load generator of the creates and gets phases")
    parser.add_argument("--wrk-seconds", type=int, default=5,
                        help="--client wrk: duration of each timed phase (wrk takes whole seconds)")
    parser.add_argument("--wrk-warmup", type=int, default=1,
                        help="--client wrk: seconds of untimed creates first")
    parser.add_argument("--wrk-threads", type=int, default=1,
                        help="--client wrk: wrk threads (one keeps up with a few thousand requests/s)")
    parser.add_argument("--wrk", default=shutil.which("wrk") or "/usr/bin/wrk", help="the wrk binary")
    parser.add_argument("--server-workers", type=int, default=1,
                        help="API server processes (corral server --api-workers N, passed if N > 1)")
    args = parser.parse_args(argv)
    args.only = {p.strip() for p in args.only.split(",") if p.strip()}
    unknown = args.only - {"creates", "gets", "lists", "write", "watch", "status"}
    if unknown:
        parser.error(f"--only: unknown phase(s) {sorted(unknown)}")
    if args.watch_procs < 1 or args.watchers < args.watch_procs:
        parser.error("--watchers must be at least --watch-procs, which must be at least 1")
    if args.server_workers < 1:
        parser.error(f"--server-workers must be at least 1, got {args.server_workers}")
    if args.client == "wrk":
        if args.wrk_seconds <= 0 or args.wrk_warmup <= 0:
            parser.error("--wrk-seconds and --wrk-warmup must be positive")
        if not 1 <= args.wrk_threads <= args.clients:
            parser.error(f"--wrk-threads must be within [1, --clients], got {args.wrk_threads}")
        if not os.access(args.wrk, os.X_OK):
            parser.error(f"--wrk: {args.wrk} is not an executable (install wrk or pass its path)")
    return args


def server_args(workers: int) -> list[str]:
    """Extra `corral server` arguments; none for one process, so the bench
    runs on a server that predates --api-workers."""
    return ["--api-workers", str(workers)] if workers > 1 else []


def main() -> None:
    args = parse_args()
    # The server inherits this limit: it holds one socket per watcher.
    raise_fd_limit(args.watchers + args.clients + args.rate_connections + 1024)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    with corral_child("server", *server_args(args.server_workers), keep=args.keep) as child:
        asyncio.run(run(child, args))


if __name__ == "__main__":
    main()
