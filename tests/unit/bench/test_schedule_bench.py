"""bench/schedule_e2e.py's pure parts for a server of several processes:
the `corral server` arguments, naming and splitting the process tree's CPU,
and counting writes over every process's audit log."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))
import schedule_e2e as e2e  # noqa: E402


def test_server_args_only_for_several_workers() -> None:
    assert e2e.server_args(1) == []
    assert e2e.server_args(3) == ["--api-workers", "3"]
    with pytest.raises(ValueError, match="at least 1"):
        e2e.server_args(0)


def test_process_names_owner_first_then_workers_by_pid() -> None:
    assert e2e.process_names([500, 720, 610]) == {"server": 500, "worker1": 610, "worker2": 720}
    assert e2e.process_names([42]) == {"server": 42}
    with pytest.raises(ValueError, match="empty"):
        e2e.process_names([])


def test_cpu_by_process_converts_percent_to_ms_per_pod() -> None:
    split = e2e.cpu_by_process([100.0, 50.0], wall=10.0, pods=1000)
    # A full core for 10 s over 1,000 pods is 10 ms each; half a core 5 ms.
    assert split == {"server": {"pct": 100.0, "ms_per_pod": 10.0},
                     "worker1": {"pct": 50.0, "ms_per_pod": 5.0}}
    with pytest.raises(ValueError, match="pods"):
        e2e.cpu_by_process([1.0], wall=1.0, pods=0)


def _event(verb: str, when: float, agent: str, resource: str, sub: str = "") -> bytes:
    stamp = datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    ref = {"resource": resource, **({"subresource": sub} if sub else {})}
    return orjson.dumps({"verb": verb, "requestReceivedTimestamp": stamp, "userAgent": f"{agent}/1.0",
                         "objectRef": ref}) + b"\n"


def test_writes_counted_over_owner_and_worker_audit_logs(tmp_path: Path) -> None:
    t0 = 1_800_000_000.0
    (tmp_path / "audit.log").write_bytes(
        _event("create", t0 + 1, "corral-scheduler", "pods", "binding")
        + _event("get", t0 + 1, "corral-scheduler", "pods")  # a read: not counted
        + _event("create", t0 - 5, "corral-scheduler", "pods", "binding"))  # before the window
    (tmp_path / "audit.worker1.log").write_bytes(
        _event("patch", t0 + 2, "corral-hollow-node", "pods", "status")
        + _event("create", t0 + 2, "bench-schedule", "pods"))
    (tmp_path / "audit.worker2.log").write_bytes(
        _event("patch", t0 + 3, "corral-hollow-node", "pods", "status")
        + _event("patch", t0 + 99, "corral-hollow-node", "pods", "status"))  # after the window
    (tmp_path / "audit.d").mkdir()  # not a log file
    logs = e2e.audit_logs(tmp_path)
    assert [p.name for p in logs] == ["audit.log", "audit.worker1.log", "audit.worker2.log"]
    counts = e2e.writes_in(logs, (t0, t0 + 10))
    assert counts == {"corral-scheduler create pods/binding": 1, "corral-hollow-node patch pods/status": 2,
                      "bench-schedule create pods": 1}


def test_busy_seconds_counts_samples_at_or_over_the_threshold() -> None:
    assert e2e.busy_seconds([100, 90, 89.9, 0, 120]) == 3
    assert e2e.busy_seconds([50, 60], threshold=55) == 1
    assert e2e.busy_seconds([]) == 0


async def test_sample_cpu_records_a_busy_process() -> None:
    import asyncio
    import os
    import time

    series: dict[str, list[float]] = {}
    sampler = asyncio.create_task(e2e.sample_cpu({"me": os.getpid()}, series, every=0.2))
    deadline = time.monotonic() + 10
    while len(series.get("me", [])) < 2 and time.monotonic() < deadline:
        spin_until = time.monotonic() + 0.05  # this process busy, then yield to the sampler
        while time.monotonic() < spin_until:
            pass
        await asyncio.sleep(0)
    sampler.cancel()
    assert len(series["me"]) >= 2
    assert max(series["me"]) > 30  # mostly spinning: well above idle


def test_runqueue_wait_seconds_reads_this_process() -> None:
    import os

    waited = e2e.runqueue_wait_seconds(os.getpid())
    assert waited >= 0
    assert e2e.runqueue_wait_seconds(os.getpid()) >= waited  # a counter: never goes back
    with pytest.raises(OSError):
        e2e.runqueue_wait_seconds(2**22 + 1)  # beyond pid_max's default: no such process
