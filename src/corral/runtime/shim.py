"""The per-container supervisor (``python -m corral.runtime.shim DIR``).

Why a separate process: the agent is crash-only, yet a container must keep
running, keep its output and have its exit code recorded while no agent is
there. So, like conmon for CRI-O, a small supervisor is the container's
parent: it starts the command in its own session (signals to the group reach
every child), copies stdout/stderr into a size-capped log in the CRI log
format (``<RFC3339Nano> <stream> <F|P> <text>``), and writes ``exit.json``
when the container exits. The agent only reads files and sends signals, so a
new agent process can adopt containers started by the previous one.

Files in DIR: ``spec.json`` (input), ``started.json`` (pid + kernel start
time, to guard against pid reuse), ``exit.json`` (exit code or start error).
"""

from __future__ import annotations

import calendar
import contextlib
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from corral.runtime.entry import PodEntry

PARTIAL_LINE_BYTES = 16 * 1024
"""A line longer than this is written as partial records (tag P) so one
endless line cannot grow the shim's memory."""

DRAIN_SECONDS = 1.0
POLL_EXIT = 0.2
"""How often a supervisor without a pidfd looks whether its container exited."""


def rfc3339nano(ns: int | None = None) -> str:
    ns = time.time_ns() if ns is None else ns
    secs, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"


def parse_rfc3339nano(text: str | bytes) -> int | None:
    """Nanoseconds since the epoch of ``2006-01-02T15:04:05.999999999Z``
    (Docker trims trailing zeros of the fraction; no fraction is fine)."""
    if isinstance(text, bytes):
        text = text.decode("ascii", "replace")
    base, _, frac = text.rstrip("Z").partition(".")
    try:
        secs = calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return None
    digits = "".join(ch for ch in frac if ch.isdigit())
    return secs * 1_000_000_000 + int((digits + "000000000")[:9])


def proc_start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (field 22 of
    /proc/PID/stat): with the pid it names one process for ever."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses.
    fields = raw[raw.rindex(b")") + 2 :].split()
    return int(fields[19])


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


class LogWriter:
    """Appends CRI-format records, rotating to ``<path>.1`` past ``max_bytes``."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max(1024, max_bytes)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        self._size = os.fstat(self._fd).st_size

    def record(
        self, stream: bytes, content: bytes, partial: bool, ts_ns: int | None = None
    ) -> None:
        """``ts_ns`` keeps the time the runtime saw the line (Docker's), so a
        follower resuming after an agent restart can tell what it wrote."""
        tag = b"P" if partial else b"F"
        rec = b"%s %s %s %s\n" % (rfc3339nano(ts_ns).encode(), stream, tag, content)
        if self._size > 0 and self._size + len(rec) > self.max_bytes:
            self._rotate()
        os.write(self._fd, rec)
        self._size += len(rec)

    def _rotate(self) -> None:
        os.close(self._fd)
        os.replace(self.path, self.path.with_name(self.path.name + ".1"))
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        self._size = 0

    def close(self) -> None:
        os.close(self._fd)


class _Stream:
    def __init__(self, name: bytes, writer: LogWriter) -> None:
        self.name = name
        self.writer = writer
        self.buf = b""

    def feed(self, data: bytes) -> None:
        self.buf += data
        *lines, self.buf = self.buf.split(b"\n")
        for line in lines:
            self.writer.record(self.name, line, partial=False)
        while len(self.buf) > PARTIAL_LINE_BYTES:
            self.writer.record(self.name, self.buf[:PARTIAL_LINE_BYTES], partial=True)
            self.buf = self.buf[PARTIAL_LINE_BYTES:]

    def finish(self) -> None:
        if self.buf:
            self.writer.record(self.name, self.buf, partial=False)
            self.buf = b""


def _exited(pid: int) -> bool:
    """Has the child exited? Looks without reaping, so its pid (and so its
    process group id) stays reserved until the strays are killed."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return info is not None


def pump(proc: subprocess.Popen[bytes], writer: LogWriter) -> None:
    sel = selectors.DefaultSelector()
    assert proc.stdout is not None and proc.stderr is not None
    for pipe, name in ((proc.stdout, b"stdout"), (proc.stderr, b"stderr")):
        sel.register(pipe.fileno(), selectors.EVENT_READ, _Stream(name, writer))
    exit_fd = _exit_fd(proc.pid)
    if exit_fd is not None:
        sel.register(exit_fd, selectors.EVENT_READ, None)
    drain_deadline: float | None = None
    while any(key.data is not None for key in sel.get_map().values()):
        timeout = POLL_EXIT if exit_fd is None else None
        if drain_deadline is not None:
            timeout = max(0.0, drain_deadline - time.monotonic())
        for key, _ in sel.select(timeout=timeout):
            if key.data is None:  # the exit: looked at below, then polled
                sel.unregister(key.fd)
                os.close(key.fd)
                exit_fd = None
                continue
            data = os.read(key.fd, 65536)
            if data:
                key.data.feed(data)
            else:
                key.data.finish()
                sel.unregister(key.fd)
        if drain_deadline is None and _exited(proc.pid):
            # The main process is the container: once it is gone, anything
            # left in its group goes too (as when a pid namespace's init dies).
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            drain_deadline = time.monotonic() + DRAIN_SECONDS
        if drain_deadline is not None and time.monotonic() > drain_deadline:
            break
    if exit_fd is not None:
        sel.unregister(exit_fd)
        os.close(exit_fd)
    for key in list(sel.get_map().values()):
        key.data.finish()
    sel.close()


def _exit_fd(pid: int) -> int | None:
    """A descriptor that turns readable when the process exits (pidfd,
    Linux 5.3+): an idle supervisor then sleeps until output or exit instead
    of waking five times a second to look (100 idle pods cost ~4 % of a core
    in those wake-ups). None where there is none: it polls then."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def run(cdir: Path) -> int:
    began = time.monotonic()
    spec = json.loads((cdir / "spec.json").read_text())
    writer = LogWriter(Path(spec["log_path"]), int(spec["log_max_bytes"]))
    cgroup = _cgroup(spec)
    entry = None
    proc = None
    try:
        entry = _prepare_isolation(spec, cgroup)
        isolated = time.monotonic()
        with open(os.devnull, "rb") as devnull, entry.entered():
            proc = subprocess.Popen(
                spec["argv"],
                env=spec["env"],
                stdin=devnull,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                close_fds=True,
                **entry.popen_args(),
            )
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        if proc is not None:  # spawned, but the shim could not step back out
            proc.kill()
            proc.wait()
        report = {"error": "StartError", "message": str(exc), "finishedAt": rfc3339nano()}
        with contextlib.suppress(OSError):
            write_json_atomic(cdir / "exit.json", report)
        _tell_agent(report)
        writer.close()
        return 0
    finally:
        if entry is not None:
            entry.close()  # the container holds its namespaces and mounts now
    # The start's steps on CLOCK_MONOTONIC (system wide: the agent puts
    # them in the pod's start timeline, agent/startsteps.py). "isolated":
    # cgroup and pod namespaces (sandbox) ready; the shim steps into them
    # for the spawn, inside "spawned".
    steps = {"began": began, "isolated": isolated, "spawned": time.monotonic()}
    started = {
        "pid": proc.pid,
        "startTicks": proc_start_ticks(proc.pid),
        "startedAt": rfc3339nano(),
        "steps": steps,
    }
    write_json_atomic(cdir / "started.json", started)
    _tell_agent(started)
    try:
        pump(proc, writer)
    finally:
        code = proc.wait()
        writer.close()
        exit_info: dict[str, Any] = {"finishedAt": rfc3339nano()}
        if code < 0:
            exit_info.update(exitCode=128 - code, signal=-code)
        else:
            exit_info.update(exitCode=code, signal=None)
        if cgroup is not None and code == -signal.SIGKILL and cgroup.oom_kills() > 0:
            exit_info["reason"] = "OOMKilled"
        write_json_atomic(cdir / "exit.json", exit_info)
    return 0


def _cgroup(spec: dict[str, Any]) -> Any:
    from corral.runtime.cgroups import Cgroup

    info = spec.get("cgroup")
    return Cgroup(int(info["version"]), str(info["name"])) if info else None


def _prepare_isolation(spec: dict[str, Any], cgroup: Any) -> PodEntry:
    """Set up what the container runs in (its cgroup with limits, the pod's
    sandbox, its volumes cloned) and say how its process gets there: a
    :class:`~corral.runtime.entry.PodEntry`."""
    from corral.runtime import namespaces as ns
    from corral.runtime.entry import PodEntry
    from corral.runtime.init import ensure_sandbox
    from corral.runtime.limits import ContainerLimits
    from corral.runtime.rootfs import ContainerBinds

    pids = None
    if cgroup is not None:
        limits = ContainerLimits(**spec["cgroup"]["limits"])
        cgroup.create(limits)
        pids = limits.pids
    sandbox = spec.get("sandbox")
    common = {"cwd": spec["cwd"], "cgroup": cgroup, "pids_limit": pids, "user": spec.get("user")}
    if sandbox is None:
        return PodEntry(**common)
    if sandbox.get("netns"):
        # The pod's network namespace (net/podnet.py): the init forked
        # below and the container both inherit it from here.
        net_fd = os.open(sandbox["netns"], os.O_RDONLY | os.O_CLOEXEC)
        ns.setns(net_fd, ns.CLONE_NEWNET)
        os.close(net_fd)
    state = sandbox.get("state")
    init_pid = ensure_sandbox(Path(sandbox["dir"]), sandbox["hostname"], sandbox["keep"],
                              rootfs=bool(sandbox.get("rootfs")), mask=sandbox.get("mask"),
                              state_dir=Path(state) if state else None)
    pid_fd = os.open(f"/proc/{init_pid}/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    ns.setns(pid_fd, ns.CLONE_NEWPID)  # only our children are born there
    os.close(pid_fd)
    binds = ContainerBinds(spec["mounts"]) if spec.get("mounts") else None
    try:
        return PodEntry.of_sandbox(init_pid, binds=binds, **common)
    except BaseException:
        if binds is not None:
            binds.close()
        raise


def _tell_agent(report: dict[str, Any]) -> None:
    """One JSON line on stdout tells the starting agent the outcome; then
    stdout is detached so a gone agent cannot break the shim with EPIPE."""
    try:
        sys.stdout.write(json.dumps(report) + "\n")
        sys.stdout.flush()
    except OSError:
        pass
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)


if __name__ == "__main__":
    # No signal handlers here: ignored signals would be inherited by the
    # container; the shim's own session already keeps group signals away.
    sys.exit(run(Path(sys.argv[1])))
