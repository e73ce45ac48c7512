"""The pure helpers the benchmarks share: percentiles, JSON lines, per-second
worst latency, and reading a process's memory and CPU from /proc."""

from __future__ import annotations

import importlib.util
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

_PATH = Path(__file__).resolve().parents[3] / "bench" / "_common.py"
_spec = importlib.util.spec_from_file_location("bench_common_under_test", _PATH)
assert _spec is not None and _spec.loader is not None
common = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(common)


def test_percentile_is_nearest_rank() -> None:
    values = list(range(1, 1001))  # 1..1000, shuffled order must not matter
    values.reverse()
    assert common.percentile(values, 99) == 990
    assert common.percentile(values, 50) == 500
    assert common.percentile(values, 100) == 1000
    assert common.percentile(values, 0) == 1
    assert common.percentile([7.5], 99) == 7.5


def test_percentile_of_few_values_takes_the_worst_for_p99() -> None:
    assert common.percentile([1, 2, 3, 100], 99) == 100
    assert common.percentile([1, 2, 3, 100], 50) == 2


@pytest.mark.parametrize("q", [-1, 100.5])
def test_percentile_rejects_q_out_of_range(q: float) -> None:
    with pytest.raises(ValueError, match="q must be within"):
        common.percentile([1.0], q)


def test_percentile_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match="no values"):
        common.percentile([], 50)


@given(st.lists(st.floats(min_value=0, max_value=1e6), min_size=1, max_size=200),
       st.floats(min_value=0, max_value=100))
def test_percentile_is_a_measured_value_between_min_and_max(values: list[float], q: float) -> None:
    p = common.percentile(values, q)
    assert p in values
    assert min(values) <= p <= max(values)
    assert sum(v <= p for v in values) >= q / 100 * len(values)


def test_summary_ms_rounds_and_orders() -> None:
    stats = common.summary_ms([1.23456, 2.0, 3.0, 50.98765])
    assert stats == {"p50_ms": 2.0, "p99_ms": 50.988, "max_ms": 50.988}


def test_emit_prints_one_json_line_with_the_required_keys(capsys: pytest.CaptureFixture[str]) -> None:
    record = common.emit("api", "creates_per_second", 1234.56789, "1/s", clients=32, count=5000)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    printed = json.loads(lines[0])
    assert printed == record == {"bench": "api", "metric": "creates_per_second", "value": 1234.568,
                                 "unit": "1/s", "clients": 32, "count": 5000}


def test_max_by_second_keeps_the_worst_per_second_and_marks_gaps() -> None:
    timed = [(0.1, 5.0), (0.9, 7.0), (2.5, 300.0), (2.0, 1.0)]
    assert common.max_by_second(timed) == [7.0, None, 300.0]
    assert common.max_by_second([]) == []
    with pytest.raises(ValueError, match="negative"):
        common.max_by_second([(-0.1, 1.0)])


def test_memory_and_cpu_of_this_process_are_plausible() -> None:
    pid = os.getpid()
    rss = common.rss_mb(pid)
    assert 5 < rss < 4096
    assert 0 < common.pss_mb(pid) <= rss + 1
    before = common.cpu_seconds(pid)
    sum(i * i for i in range(300_000))  # burn a little CPU
    assert common.cpu_seconds(pid) >= before


def test_processes_matching_finds_this_process_by_its_command_line() -> None:
    own = (Path(f"/proc/{os.getpid()}/cmdline").read_bytes().split(b"\0")[0]).decode()
    assert os.getpid() in common.processes_matching([own])
    assert common.processes_matching([own, "no-such-argument-anywhere-4f1c"]) == []


def test_raise_fd_limit_never_lowers_and_respects_the_hard_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        assert common.raise_fd_limit(16) == soft  # asking for less changes nothing
        got = common.raise_fd_limit(soft + 100)
        assert got >= soft
        if hard != resource.RLIM_INFINITY:
            assert got <= hard
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_wait_until_returns_the_value_or_names_what_it_waited_for() -> None:
    calls = iter([0, 0, "done"])
    assert common.wait_until(lambda: next(calls), 5, "the third call", interval=0.001) == "done"
    with pytest.raises(TimeoutError, match="the impossible"):
        common.wait_until(lambda: False, 0.05, "the impossible", interval=0.01)


def test_wait_until_stops_at_once_on_fatal() -> None:
    started = time.monotonic()

    def gone() -> bool:
        raise common.Fatal("the process exited")

    with pytest.raises(common.Fatal, match="exited"):
        common.wait_until(gone, 30, "a dead process")
    assert time.monotonic() - started < 5


_PARENT = """
import subprocess, sys
burn = [sys.executable, "-c", "while True: pass"]
mine = subprocess.Popen(burn)
apart = subprocess.Popen(burn, start_new_session=True)
print(mine.pid, apart.pid, flush=True)
sys.stdin.readline()
mine.kill()
mine.wait()
print("reaped", flush=True)
sys.stdin.readline()
"""


def test_the_process_tree_counts_descendants_in_the_session_and_reaped_ones() -> None:
    """A parent (idle) with a busy child in its session and a busy child in
    a session of its own: the tree's CPU is the parent's plus the first
    child's, and stays so once the parent has reaped that child."""
    parent = subprocess.Popen([sys.executable, "-c", _PARENT], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    apart = None
    try:
        assert parent.stdout is not None and parent.stdin is not None
        mine, apart = (int(p) for p in parent.stdout.readline().split())
        meter = common.CpuMeter(parent.pid)
        common.wait_until(lambda: common.cpu_seconds(mine) >= 0.3 and common.cpu_seconds(apart) >= 0.3,
                          30, "both children to burn 0.3 s of CPU", interval=0.02)
        assert sorted(common.process_tree(parent.pid)) == sorted([parent.pid, mine])
        tree = common.tree_cpu_seconds(parent.pid)
        own, child = common.cpu_seconds(parent.pid), common.cpu_seconds(mine)
        assert own + child - 0.05 <= tree <= own + child + 0.05
        assert meter.seconds() >= 0.25  # the busy child, since the meter started
        parent_pct, child_pct = meter.percent_by_process()
        assert child_pct > 10 * max(parent_pct, 1.0)  # the child burns, the parent waits on stdin
        burned = common.cpu_seconds(mine)
        parent.stdin.write("reap\n")
        parent.stdin.flush()
        assert parent.stdout.readline().strip() == "reaped"
        assert common.process_tree(parent.pid) == [parent.pid]
        assert common.tree_cpu_seconds(parent.pid) >= common.cpu_seconds(parent.pid) + burned - 0.02
        assert common.tree_cpu_seconds(parent.pid) < common.cpu_seconds(parent.pid) + burned + 0.2
    finally:
        if apart is not None:
            os.kill(apart, signal.SIGKILL)
        parent.kill()
        parent.wait(10)
