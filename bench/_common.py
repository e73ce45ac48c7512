"""What every benchmark shares: printing figures as JSON lines, percentiles,
reading a process's memory, and a `corral server`/`corral up` child process
that is always cleaned up, even on Ctrl-C or SIGTERM.

The benchmarks drive a real corral in its own process (so it has its own
interpreter and core, as in production) instead of an in-process server,
whose event loop would compete with the load generator's.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CORRAL = [sys.executable, "-m", "corral.cli.main"]


def emit(bench: str, metric: str, value: float, unit: str, **params: Any) -> dict[str, Any]:
    """Print one figure as one JSON line (flushed, so a killed run keeps what
    it measured) and return it."""
    record = {"bench": bench, "metric": metric, "value": round(float(value), 3), "unit": unit, **params}
    print(json.dumps(record), flush=True)
    return record


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 100]): always a value that was
    measured, so a p99 of 1,000 samples is the 990th smallest."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"q must be within [0, 100], got {q}")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return float(ordered[rank - 1])


def summary_ms(values: Sequence[float]) -> dict[str, float]:
    """p50/p99/max of latencies already in milliseconds, rounded for printing."""
    return {
        "p50_ms": round(percentile(values, 50), 3),
        "p99_ms": round(percentile(values, 99), 3),
        "max_ms": round(max(values), 3),
    }


def max_by_second(timed: Iterable[tuple[float, float]]) -> list[float | None]:
    """The worst latency (ms) of the requests scheduled in each second of the
    run, from (offset s, latency ms) pairs; element i is second i, None if no
    request fell in it. Shows whether a bad p99 is a warm-up, a periodic
    stall or steady."""
    worst: dict[int, float] = {}
    for offset, ms in timed:
        if offset < 0:
            raise ValueError(f"offset must not be negative, got {offset}")
        second = int(offset)
        worst[second] = max(worst.get(second, 0.0), ms)
    last = max(worst, default=-1)
    return [round(worst[s], 1) if s in worst else None for s in range(last + 1)]


def rss_mb(pid: int) -> float:
    """Resident set size of one process in MiB (VmRSS from /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise ValueError(f"process {pid} has no VmRSS (a zombie?)")


def pss_mb(pid: int) -> float:
    """Proportional set size in MiB: shared pages (the interpreter, libraries)
    divided among the processes sharing them, so summing it over many small
    Python processes does not count their common code once per process."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    raise ValueError(f"process {pid} has no Pss")


def _stat_fields(pid: int) -> list[bytes]:
    """The fields of /proc/PID/stat after the command name (which may hold
    spaces and parentheses): index 0 is field 3 (state)."""
    raw = Path(f"/proc/{pid}/stat").read_bytes()
    return raw[raw.rindex(b")") + 2 :].split()


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used (fields 14 and 15 of
    /proc/PID/stat), its threads included, its children not."""
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    """Live children of every thread of a process (any thread may fork)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:  # the thread ended meanwhile
            continue
    return found


def process_tree(pid: int) -> list[int]:
    """``pid`` and its live descendants that stay in its session. A child
    that started a session of its own (``start_new_session``, as
    CorralChild starts corral, and corral its container supervisors) is a
    separate program, measured on its own, and so is everything below it;
    worker processes a server forks for itself stay in its session."""
    session = _stat_fields(pid)[3]  # field 6

    def same_session(child: int) -> bool:
        try:
            return _stat_fields(child)[3] == session
        except OSError:  # exited since it was listed
            return False

    return descendants(pid, same_session)


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of ``process_tree(pid)``: for each process user plus system
    time and that of the children it has reaped (fields 14 to 17), so a
    worker that exited still counts, once, in its parent's total. The
    kernel does not say which child reaped time came from, so a reaped
    child of another session counts too."""
    ticks = 0
    for member in process_tree(pid):
        try:
            fields = _stat_fields(member)
        except OSError:  # exited since it was listed: its parent has it now
            continue
        ticks += sum(int(f) for f in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """How busy a process and its descendants (``process_tree``) were
    between ``start()`` and ``percent()``: 100 means one core fully used,
    which tells a saturated server from a saturated load generator, and a
    server of several worker processes is counted whole."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.start()

    def start(self) -> None:
        self._cpu = tree_cpu_seconds(self.pid)
        self._own = self._own_seconds()
        self._wall = time.monotonic()

    def seconds(self) -> float:
        """CPU seconds used since ``start()``."""
        return tree_cpu_seconds(self.pid) - self._cpu

    def percent(self) -> float:
        wall = time.monotonic() - self._wall
        return round(100 * self.seconds() / wall, 1) if wall > 0 else 0.0

    def percent_by_process(self) -> list[float]:
        """Each live process's own share since ``start()`` (its reaped
        children aside), the measured process first, then by pid: shows
        which process of a server saturated."""
        wall = time.monotonic() - self._wall
        now = self._own_seconds()
        order = [self.pid, *sorted(p for p in now if p != self.pid)]
        return [round(100 * (now[p] - self._own.get(p, 0.0)) / wall, 1) if wall > 0 else 0.0
                for p in order if p in now]

    def _own_seconds(self) -> dict[int, float]:
        own = {}
        for member in process_tree(self.pid):
            try:
                own[member] = cpu_seconds(member)
            except OSError:
                continue
        return own


CPUACCT = Path("/sys/fs/cgroup/cpuacct")


RUNTIME_CGROUP_PREFIX = "corral"
"""Where the process runtime makes pods' cgroups (runtime/cgroups.py PREFIX)."""


def _cpuacct(group: Path) -> tuple[float, float, float]:
    total = int((group / "cpuacct.usage").read_text()) / 1e9
    stat = dict(line.split() for line in (group / "cpuacct.stat").read_text().splitlines())
    hz = os.sysconf("SC_CLK_TCK")
    return total, int(stat["user"]) / hz, int(stat["system"]) / hz


def descendants(pid: int, keep: Callable[[int], bool] = lambda _pid: True) -> list[int]:
    """``pid`` and its live descendants, whatever their session unless
    ``keep`` says otherwise (a child it refuses is left out with all below it)."""
    tree, todo = [pid], [pid]
    while todo:
        try:
            children = _children(todo.pop())
        except OSError:  # exited since it was listed
            continue
        kept = [child for child in children if keep(child)]
        tree.extend(kept)
        todo.extend(kept)
    return tree


class CgroupCpu:
    """CPU of a set of processes and of everything they start, from a cgroup
    v1 ``cpuacct`` group of its own. The kernel charges every fork, exec and
    page fault of every descendant there, exited ones included, which the
    per-process counters miss (a container's own fork and exec, short-lived
    helpers). corral's process runtime uses the cpu, memory and pids
    hierarchies, never cpuacct, so its pods stay in the group. ``read`` is
    None where there is no such hierarchy (a v2-only host)."""

    def __init__(self, name: str) -> None:
        self.path: Path | None = None
        if (CPUACCT / "cgroup.procs").exists():
            self.path = CPUACCT / f"corral-bench-{name}-{os.getpid()}"
            self.path.mkdir(exist_ok=True)

    def add(self, *pids: int) -> None:
        """Move these processes in (their threads come along; their
        children already born do not: pass them too)."""
        if self.path is None:
            return
        for pid in pids:
            try:
                (self.path / "cgroup.procs").write_text(str(pid))
            except OSError:
                pass  # exited meanwhile

    def read(self, pod_uids: Iterable[str] = ()) -> tuple[float, float, float] | None:
        """(total, user, system) CPU seconds used in the group so far, plus
        that of these pods' own groups: a container joins a cpuacct group
        of its own (``corral/<pod uid>/...``, for ``kubectl top``) between
        its fork and its exec, and is charged there from then on."""
        if self.path is None:
            return None
        total, user, system = _cpuacct(self.path)
        for uid in pod_uids:
            try:
                pod = _cpuacct(CPUACCT / RUNTIME_CGROUP_PREFIX / uid)
            except OSError:
                continue  # no container of it started, or already removed
            total, user, system = total + pod[0], user + pod[1], system + pod[2]
        return total, user, system

    def close(self) -> None:
        """Move what is left back to the root group and remove the group."""
        if self.path is None:
            return
        deadline = time.monotonic() + 5
        while True:
            for pid in (self.path / "cgroup.procs").read_text().split():
                with contextlib.suppress(OSError):
                    (CPUACCT / "cgroup.procs").write_text(pid)
            try:
                self.path.rmdir()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


def processes_matching(needles: Iterable[str]) -> list[int]:
    """Pids whose command line contains every one of ``needles``."""
    wanted = [n.encode() for n in needles]
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if cmdline and all(n in cmdline for n in wanted):
            found.append(int(entry.name))
    return sorted(found)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def raise_fd_limit(wanted: int) -> int:
    """Raise the soft open-files limit towards ``wanted`` (up to the hard
    limit); returns the limit now in force."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return int(soft)


class Fatal(Exception):
    """Raised by a polled predicate when waiting longer cannot help (the
    process being waited for has exited)."""


def wait_until(predicate: Any, timeout: float, message: str, interval: float = 0.1) -> Any:
    """Poll ``predicate`` until it returns something truthy; raise TimeoutError
    naming ``message`` when the deadline passes. Other exceptions from the
    predicate count as "not yet", except ``Fatal``, which ends the wait."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Fatal:
            raise
        except Exception as exc:  # keep polling; report the last failure on timeout
            last_exc = exc
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {message}"
                       + (f" (last error: {last_exc!r})" if last_exc else ""))


class CorralChild:
    """``corral server`` or ``corral up`` as a child in its own session, with
    its data in ``data_dir`` and its output in ``data_dir/../corral.log``."""

    def __init__(self, command: str, data_dir: Path, *extra: str, port: int | None = None) -> None:
        self.command = command
        self.data_dir = data_dir
        self.port = port or free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.kubeconfig = data_dir / "kubeconfig"
        self.ca_file = data_dir / "pki" / "ca.crt"
        self.log_path = data_dir.parent / "corral.log"
        self._log = open(self.log_path, "wb")
        args = [*CORRAL, command, "--data-dir", str(data_dir), "--port", str(self.port), *extra]
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def token(self) -> str:
        return (self.data_dir / "tokens.csv").read_text().split(",", 1)[0].strip()

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until /readyz answers 200 over TLS with the data dir's CA."""

        def ready() -> bool:
            if self.proc.poll() is not None:
                raise Fatal(f"corral {self.command} exited with {self.proc.returncode}:\n"
                            + self.output())
            if not self.kubeconfig.exists() or not self.ca_file.exists():
                return False
            with urllib.request.urlopen(f"{self.url}/readyz", context=self.ssl_context(), timeout=2) as r:
                return bool(r.status == 200)

        try:
            wait_until(ready, timeout, f"corral {self.command} /readyz", interval=0.1)
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\n{self.output()}") from None

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-5000:]

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, then SIGKILL of the whole session if it does not exit."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait()
        self._log.close()


@contextmanager
def sigterm_as_exit() -> Iterator[None]:
    """Turn SIGTERM into SystemExit, so ``finally`` blocks clean up child
    processes when a benchmark is terminated (Ctrl-C already raises)."""

    def handler(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def corral_child(command: str, *extra: str, keep: bool = False, base_dir: str | None = None,
                 ready_timeout: float = 60.0,
                 after_stop: Callable[[Path], None] | None = None) -> Iterator[CorralChild]:
    """A ready corral child in a fresh temp dir, stopped (and the dir removed
    unless ``keep``) however the block ends. ``after_stop(data_dir)`` runs once
    corral is gone, for what outlives it by design (container supervisors)."""
    tmp = Path(tempfile.mkdtemp(prefix=f"corral-bench-{command}-", dir=base_dir))
    child: CorralChild | None = None
    try:
        with sigterm_as_exit():
            child = CorralChild(command, tmp / "data", *extra)
            child.wait_ready(ready_timeout)
            yield child
    finally:
        if child is not None:
            child.stop()
            if after_stop is not None:
                after_stop(child.data_dir)
        if keep:
            print(f"# kept {tmp}", file=sys.stderr)
        else:
            import shutil

            from corral.runtime.memfs import unmount_under

            unmount_under(tmp)  # an agent stopped with pods left keeps its state tmpfs
            shutil.rmtree(tmp, ignore_errors=True)
