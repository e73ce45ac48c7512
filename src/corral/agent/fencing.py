"""Fencing: an agent that cannot renew its Lease stops its pods before the
control plane may start their replacements.

After each successful renewal the agent may run its pods for
``fence_timeout`` seconds, counted from when that renewal was *sent* (the
server saw it no earlier). Past that deadline:

* the agent itself (:class:`Fence`) closes a gate so that no container
  starts, then kills every container it has;
* a separate watchdog process (``python -m corral.agent.fencing watchdog``)
  kills them too. It exists because a frozen (SIGSTOP) or killed agent can
  kill nothing, while its containers, children of their own supervisors,
  would run on. It only reads a file with the deadline on the machine's
  monotonic clock, which every process on the machine shares.

The control plane waits longer than the deadline plus kill time under any
drift allowed by failover.py, so old and new copies never run together.

Coming back (the first renewal after a lapse, or the first of a new agent
process), the agent does not trust its pod cache, which may predate the
partition: it lists the pods bound to it afresh, revokes every pod it knew
that is no longer bound (its worker stops, and no container of it may ever
start again), and only then opens the gate.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from corral.failover import DEFAULT_TIMING, FENCE_ANNOTATION, WATCHDOG_POLL, FailoverTiming

log = logging.getLogger(__name__)

REVOKED_MAX = 10_000
WATCHDOG_IDLE_EXIT = 5.0  # a watchdog with nothing to guard and no agent leaves


def write_deadline(path: Path, deadline: float) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{deadline!r}\n")
    os.replace(tmp, path)


def read_deadline(path: Path) -> float | None:
    try:
        return float(path.read_text().strip())
    except (OSError, ValueError):
        return None


class Fence:
    """The agent's side of fencing. ``list_bound`` returns the uids of the
    pods bound to this node, read fresh from the API server; ``known``
    returns the uids the agent has workers for; ``revoke`` tells the agent
    to stop the workers of pods that are no longer bound."""

    def __init__(
        self,
        runtime: Any,
        timing: FailoverTiming,
        *,
        list_bound: Callable[[], Awaitable[set[str]]],
        known: Callable[[], set[str]],
        revoke: Callable[[set[str]], None],
        deadline_file: Path | None = None,
        watchdog_containers: Path | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.runtime = runtime
        self.timing = timing
        self._list_bound = list_bound
        self._known = known
        self._revoke_cb = revoke
        self._file = deadline_file
        self._watchdog_containers = watchdog_containers
        self._monotonic = monotonic
        previous = read_deadline(deadline_file) if deadline_file else None
        self.deadline = previous if previous is not None else float("-inf")
        self.fenced = True  # closed until the first renewal proves we may run
        self.lapses = 0
        self._open = asyncio.Event()
        self._inflight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._revoked: dict[str, None] = {}
        self._recovering: asyncio.Task[None] | None = None
        self._killing: asyncio.Task[None] | None = None

    # -- renewals ------------------------------------------------------------

    def renewed(self, sent_at: float) -> None:
        """A renewal sent at ``sent_at`` (monotonic) succeeded."""
        if not self.fenced and sent_at > self.deadline:
            # The deadline passed unnoticed (this process was frozen): the
            # watchdog has fenced; do our part before anything else.
            self._lapse("the agent was not running when its lease expired")
        lapsed_before = sent_at > self.deadline
        self.deadline = max(self.deadline, sent_at + self.timing.fence_timeout)
        if self._file is not None:
            with contextlib.suppress(OSError):
                write_deadline(self._file, self.deadline)
                if self._watchdog_containers is not None:
                    # Checked on every renewal: a watchdog that left while
                    # there was nothing to guard must be back before we run.
                    spawn_watchdog(self._file, self._watchdog_containers)
        if self.fenced and (self._recovering is None or self._recovering.done()):
            if lapsed_before and self._killing is None:
                self._killing = asyncio.ensure_future(self._kill_all())
            self._recovering = asyncio.ensure_future(self._recover())

    async def run(self) -> None:
        """Fire the fence when the deadline passes; until cancelled."""
        while True:
            if not self.fenced and self._monotonic() > self.deadline:
                self._lapse("no lease renewal succeeded in time")
            wait = self.deadline - self._monotonic() if not self.fenced else 1.0
            await asyncio.sleep(min(max(wait, WATCHDOG_POLL), 1.0))

    def _lapse(self, why: str) -> None:
        self.fenced = True
        self.lapses += 1
        self._open.clear()
        log.warning("fencing: %s; stopping every container until the lease is renewed", why)
        self._killing = asyncio.ensure_future(self._kill_all())

    async def _kill_all(self) -> None:
        try:
            await self._kill_listed()
            # A start that passed the gate just before it closed may still
            # be creating its container: kill again once it has finished.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), 10.0)
            await self._kill_listed()
        finally:
            self._killing = None

    async def _kill_listed(self) -> None:
        handles = await self.runtime.list()
        await asyncio.gather(
            *(self.runtime.stop_container(h, 0) for h in handles), return_exceptions=True
        )

    async def _recover(self) -> None:
        try:
            bound = await self._list_bound()
        except Exception as exc:  # the next renewal retries
            log.warning("fencing: cannot list this node's pods (%s); staying fenced", exc)
            return
        known = set(self._known()) | {h.pod_uid for h in await self.runtime.list()}
        gone = known - bound
        for uid in gone:
            self._revoked[uid] = None
        while len(self._revoked) > REVOKED_MAX:
            self._revoked.pop(next(iter(self._revoked)))
        if gone:
            log.info("fencing: %d pod(s) were unbound while fenced; removing them", len(gone))
            self._revoke_cb(gone)
        if self._killing is not None:
            await self._killing
        if self._monotonic() >= self.deadline:
            return  # expired again while we listed: wait for the next renewal
        if self.fenced:
            log.info("fencing: lease renewed; containers may run again")
        self.fenced = False
        self._open.set()

    # -- the gate ------------------------------------------------------------

    async def admit(self, pod_uid: str) -> None:
        """Wait until containers may start; refuse a revoked pod."""
        from corral.runtime.protocol import StartError

        await self._open.wait()
        if pod_uid in self._revoked:
            raise StartError("NodeFenced", "the pod was unbound from this node while it was fenced")

    def started(self) -> None:
        self._inflight += 1
        self._idle.clear()

    def finished(self) -> None:
        self._inflight -= 1
        if self._inflight == 0:
            self._idle.set()


class FencedRuntime:
    """A runtime whose ``start_container`` passes the fence's gate first;
    everything else is the wrapped runtime's."""

    def __init__(self, inner: Any, fence: Fence) -> None:
        self._inner = inner
        self._fence = fence

    async def start_container(self, pod: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        uid = str((pod.get("metadata") or {}).get("uid", ""))
        while True:
            await self._fence.admit(uid)
            if not self._fence.fenced:
                break
        self._fence.started()
        try:
            return await self._inner.start_container(pod, *args, **kwargs)
        finally:
            self._fence.finished()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@dataclass(frozen=True)
class FenceOptions:
    timing: FailoverTiming = DEFAULT_TIMING
    watchdog_containers: Path | None = None
    """The process runtime's containers directory: when set, a watchdog
    process guards it (for agents whose control plane is elsewhere)."""


def attach_fence(agent: Any, options: FenceOptions) -> Fence:
    """Wire a fence into an agent: its runtime gate, its knowledge of pods,
    and the annotation telling the control plane it fences itself."""
    from corral.client.resources import PODS

    async def list_bound() -> set[str]:
        listing = await agent.client.list(PODS, field_selector=f"spec.nodeName={agent.node_name}")
        return {str((p.get("metadata") or {}).get("uid", "")) for p in listing.get("items") or []}

    def revoke(uids: set[str]) -> None:
        for uid in uids:
            worker = agent.workers.get(uid)
            if worker is not None:
                worker.update(None)

    fence_dir = Path(agent.data_dir) / "fence"
    fence_dir.mkdir(parents=True, exist_ok=True)
    fence = Fence(
        agent.runtime,
        options.timing,
        list_bound=list_bound,
        known=lambda: set(agent.workers),
        revoke=revoke,
        deadline_file=fence_dir / "deadline",
        watchdog_containers=options.watchdog_containers,
    )
    agent._ctx.runtime = FencedRuntime(agent._ctx.runtime, fence)
    return fence


def fence_annotations(options: FenceOptions) -> dict[str, str]:
    return {FENCE_ANNOTATION: f"{options.timing.fence_timeout:g}"}


# -- the watchdog process -----------------------------------------------------


def spawn_watchdog(deadline_file: Path, containers_dir: Path) -> int | None:
    """Start a watchdog for these paths unless one is alive; its pid. The
    pid file holds the pid and the kernel's start time of that process, so a
    reused pid is never taken for our watchdog."""
    from corral.runtime.shim import proc_start_ticks

    pid_file = deadline_file.with_name("watchdog.pid")
    with contextlib.suppress(OSError, ValueError):
        pid_s, ticks_s = pid_file.read_text().split()
        if proc_start_ticks(int(pid_s)) == int(ticks_s) and not _zombie(int(pid_s)):
            return int(pid_s)
    proc = subprocess.Popen(
        [sys.executable, "-m", "corral.agent.fencing", "watchdog", str(deadline_file),
         str(containers_dir)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    pid_file.write_text(f"{proc.pid} {proc_start_ticks(proc.pid)}")
    return proc.pid


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return True
    return stat[stat.rindex(b")") + 2: stat.rindex(b")") + 3] in (b"Z", b"X")


def _live_containers(containers_dir: Path) -> list[int]:
    from corral.runtime.shim import proc_start_ticks

    pids = []
    for started in containers_dir.glob("*/started.json"):
        try:
            info = json.loads(started.read_text())
            pid, ticks = int(info["pid"]), info.get("startTicks")
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if (started.parent / "exit.json").exists():
            continue
        now_ticks = proc_start_ticks(pid)
        if now_ticks is not None and (ticks is None or now_ticks == ticks):
            pids.append(pid)
    return pids


def watchdog(deadline_file: Path, containers_dir: Path) -> int:
    """Kill every container whenever the deadline has passed; leave once
    the deadline has passed with nothing left to kill for a while."""
    with contextlib.suppress(OSError):
        os.nice(-10)  # a starved watchdog is a late fence
    idle_since: float | None = None
    while True:
        deadline = read_deadline(deadline_file)
        now = time.monotonic()
        if deadline is None or now > deadline:
            pids = _live_containers(containers_dir)
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)
            if pids:
                idle_since = None
            elif idle_since is None:
                idle_since = now
            elif now - idle_since > WATCHDOG_IDLE_EXIT:
                return 0
        else:
            idle_since = None
        time.sleep(WATCHDOG_POLL)


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] != "watchdog":
        sys.exit("usage: python -m corral.agent.fencing watchdog DEADLINE_FILE CONTAINERS_DIR")
    sys.exit(watchdog(Path(sys.argv[2]), Path(sys.argv[3])))
