"""The embedded store alone: create throughput, write latency at a fixed rate,
and watch fan-out. Prints one JSON object per figure.

    .venv/bin/python bench/store.py [--creates 20000] [--writers 64] [--rate 500]
        [--seconds 5] [--watchers 1000] [--value-bytes 1024] [--dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

from corral.store.protocol import Watch
from corral.store.sqlite import SqliteStore


def emit(metric: str, value: float, unit: str, **params: object) -> None:
    print(json.dumps({"bench": "store", "metric": metric, "value": round(value, 3),
                      "unit": unit, "backend": "sqlite", **params}), flush=True)


async def creates_per_second(store: SqliteStore, total: int, writers: int, value: bytes) -> float:
    """Closed loop: ``writers`` tasks create keys as fast as acks come back."""
    per_writer = total // writers

    async def writer(w: int) -> None:
        for i in range(per_writer):
            await store.create(f"/bench/create/{w}/{i}", value)

    started = time.perf_counter()
    await asyncio.gather(*(writer(w) for w in range(writers)))
    return per_writer * writers / (time.perf_counter() - started)


async def write_latencies_ms(
    store: SqliteStore, rate: float, seconds: float, value: bytes
) -> list[float]:
    """Open loop: one create every 1/rate seconds regardless of acks, so a slow
    commit shows up as latency instead of silently lowering the rate."""
    latencies: list[float] = []
    tasks: list[asyncio.Task[None]] = []

    async def one(i: int) -> None:
        t0 = time.perf_counter()
        await store.create(f"/bench/rate/{i}", value)
        latencies.append((time.perf_counter() - t0) * 1000)

    start = time.perf_counter()
    for i in range(int(rate * seconds)):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    return latencies


async def fanout_ms(store: SqliteStore, watchers: int, rounds: int, value: bytes) -> list[float]:
    """Time from issuing one write until all ``watchers`` of its prefix have it."""
    rev = await store.current_revision()
    watches: list[Watch] = [store.watch("/bench/fan/", rev) for _ in range(watchers)]
    received = [0] * watchers
    done = asyncio.Event()
    remaining = [watchers]

    async def consume(i: int) -> None:
        async for _ in watches[i]:
            received[i] += 1
            remaining[0] -= 1
            if remaining[0] == 0:
                done.set()

    consumers = [asyncio.create_task(consume(i)) for i in range(watchers)]
    await asyncio.sleep(0.05)  # let every consumer reach its first wait
    timings = []
    for r in range(rounds):
        remaining[0] = watchers
        done.clear()
        t0 = time.perf_counter()
        await store.create(f"/bench/fan/{r}", value)
        await asyncio.wait_for(done.wait(), 10)
        timings.append((time.perf_counter() - t0) * 1000)
    for watch in watches:
        await watch.close()
    await asyncio.gather(*consumers)
    assert all(n == rounds for n in received)
    return timings


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


async def main(args: argparse.Namespace) -> None:
    value = b"x" * args.value_bytes
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        store = SqliteStore(str(Path(tmp) / "bench.db"))
        await store.start()
        try:
            rate = await creates_per_second(store, args.creates, args.writers, value)
            emit("creates_per_second", rate, "1/s", creates=args.creates,
                 writers=args.writers, value_bytes=args.value_bytes,
                 mean_batch=round(store.stats.operations / max(1, store.stats.batches), 1))
            lat = await write_latencies_ms(store, args.rate, args.seconds, value)
            emit("write_p99_ms", p99(lat), "ms", rate=args.rate, seconds=args.seconds,
                 writes=len(lat), p50_ms=round(statistics.median(lat), 3),
                 max_ms=round(max(lat), 3), value_bytes=args.value_bytes)
            fan = await fanout_ms(store, args.watchers, 20, value)
            emit("watch_fanout_ms", statistics.median(fan), "ms", watchers=args.watchers,
                 rounds=len(fan), max_ms=round(max(fan), 3))
        finally:
            await store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--creates", type=int, default=20000)
    parser.add_argument("--writers", type=int, default=64)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--watchers", type=int, default=1000)
    parser.add_argument("--value-bytes", type=int, default=1024)
    parser.add_argument("--dir", default=None, help="directory for the database (default: tmp)")
    asyncio.run(main(parser.parse_args()))
