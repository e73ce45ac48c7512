"""High availability: leader failover time, lost writes, etcd vs SQLite writes.

    .venv/bin/python bench/ha.py [--trials 10] [--seconds 5] [--writers 16]

Starts a 3-member etcd on loopback (Debian's etcd-server) and two
``corral server`` processes over it. Each trial kills the leading server
with SIGKILL while a client keeps creating ConfigMaps through both servers,
and times kill → the other server reporting ``leader`` on /readyz; the
killed server is then restarted for the next trial. At the end every
acknowledged write is looked up (``lost_writes``). In the same run, API
write throughput (closed loop, ``--writers`` concurrent creates) is measured
against one server on etcd and one on SQLite: ``etcd_to_sqlite_write_ratio``.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from _common import emit, percentile  # noqa: E402

from corral.client import errors  # noqa: E402
from corral.client.api import ApiClient  # noqa: E402
from corral.client.resources import CONFIGMAPS  # noqa: E402
from fixtures.etcd import EtcdCluster, start_cluster  # noqa: E402
from fixtures.ha import HaControlPlane, ServerProcess  # noqa: E402

BENCH = "ha"
NS = "default"


async def writer(client: ApiClient, prefix: str, acked: list[str], stop: asyncio.Event) -> None:
    i = 0
    while not stop.is_set():
        name = f"{prefix}-{i:06d}"
        try:
            await client.create(CONFIGMAPS, {"metadata": {"name": name, "namespace": NS}})
            acked.append(name)
        except errors.AlreadyExistsError:
            acked.append(name)
        except errors.ApiError:
            await asyncio.sleep(0.02)
            continue
        i += 1


async def one_failover(plane: HaControlPlane, trial: int, acked: list[str]) -> float:
    leader = plane.leader(15)
    others = [s for s in plane.servers if s is not leader and s.alive]
    async with ApiClient([leader.url] + [s.url for s in others], token=plane.token,
                         ca_file=plane.ca_file, timeout=10) as client:
        stop = asyncio.Event()
        task = asyncio.create_task(writer(client, f"t{trial}", acked, stop))
        start = len(acked)
        while len(acked) < start + 20:
            await asyncio.sleep(0.01)
        leader.kill()
        killed = time.monotonic()
        while not any(s.role(0.5) == "leader" for s in others):
            if time.monotonic() - killed > 30:
                raise TimeoutError("no new leader in 30 s")
            await asyncio.sleep(0.02)
        failover = time.monotonic() - killed
        mark = len(acked)
        while len(acked) < mark + 20:
            await asyncio.sleep(0.01)
        stop.set()
        await task
    # Bring the killed server back (same data dir, new port) for the next trial.
    index = plane.servers.index(leader)
    replacement = ServerProcess(leader.data_dir, plane.store_url)
    plane.servers[index] = replacement
    replacement.wait_ready()
    return failover


async def count_lost(plane: HaControlPlane, acked: list[str]) -> int:
    async with ApiClient([s.url for s in plane.servers], token=plane.token,
                         ca_file=plane.ca_file, timeout=30) as client:
        items, _ = await client.list_all(CONFIGMAPS, NS)
    present = {cm["metadata"]["name"] for cm in items}
    return sum(1 for name in acked if name not in present)


async def throughput(url: str, token: str, ca_file: str, seconds: float, writers: int,
                     prefix: str) -> float:
    acked: list[str] = []
    async with ApiClient(url, token=token, ca_file=ca_file, timeout=30) as client:
        stop = asyncio.Event()
        tasks = [asyncio.create_task(writer(client, f"{prefix}{w}", acked, stop))
                 for w in range(writers)]
        await asyncio.sleep(1.0)  # warm up
        begin, started = len(acked), time.perf_counter()
        await asyncio.sleep(seconds)
        done, elapsed = len(acked) - begin, time.perf_counter() - started
        stop.set()
        await asyncio.gather(*tasks)
    return done / elapsed


def write_ratio(cluster: EtcdCluster, base: Path, seconds: float, writers: int) -> None:
    figures: dict[str, float] = {}
    for backend, url in (("sqlite", f"sqlite://{base}/tp-sqlite/state.db"),
                         ("etcd", cluster.url("/bench-throughput"))):
        (base / f"tp-{backend}").mkdir(exist_ok=True)
        server = ServerProcess(base / f"tp-{backend}", url, "--no-leader-elect")
        try:
            server.wait_ready()
            token = (server.data_dir / "tokens.csv").read_text().split(",", 1)[0]
            ca = str(server.data_dir / "pki" / "ca.crt")
            figures[backend] = asyncio.run(throughput(server.url, token, ca, seconds, writers, backend))
        finally:
            server.stop()
        emit(BENCH, f"{backend}_api_writes_per_second", figures[backend], "1/s", backend=backend,
             writers=writers, seconds=seconds)
    emit(BENCH, "etcd_to_sqlite_write_ratio", figures["etcd"] / figures["sqlite"], "ratio",
         writers=writers, seconds=seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--writers", type=int, default=16)
    args = parser.parse_args()
    if args.trials < 1:
        parser.error("--trials: at least 1")
    base = Path(tempfile.mkdtemp(prefix="corral-bench-ha-"))
    cluster = start_cluster()
    plane: HaControlPlane | None = None
    try:
        plane = HaControlPlane(base / "plane", cluster.url("/bench-failover"), count=2)
        acked: list[str] = []
        times = [asyncio.run(one_failover(plane, t, acked)) for t in range(args.trials)]
        params: dict[str, Any] = {"trials": args.trials, "servers": 2, "etcd_members": 3}
        emit(BENCH, "leader_failover_p50_s", percentile(times, 50), "s", **params)
        emit(BENCH, "leader_failover_p99_s", percentile(times, 99), "s", **params)
        emit(BENCH, "leader_failover_max_s", max(times), "s", **params)
        emit(BENCH, "lost_writes", asyncio.run(count_lost(plane, acked)), "writes",
             acknowledged=len(acked), **params)
        plane.stop()
        plane = None
        write_ratio(cluster, base, args.seconds, args.writers)
    finally:
        if plane is not None:
            plane.stop()
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(cluster.base, ignore_errors=True)


if __name__ == "__main__":
    main()
