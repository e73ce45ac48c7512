"""The agent's fence: a gate and a kill on lease lapse, a fresh pod list
before anything runs again; and the watchdog process that fences a frozen
or dead agent."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from corral.agent.fencing import Fence, FencedRuntime, read_deadline, spawn_watchdog, write_deadline
from corral.failover import FailoverTiming
from corral.runtime.protocol import StartError
from corral.runtime.shim import proc_start_ticks

TIMING = FailoverTiming(renew_interval=0.1, fence_timeout=0.5, grace=1.0)


class Handle:
    def __init__(self, uid: str) -> None:
        self.pod_uid = uid
        self.id = f"c-{uid}"


class FakeRuntime:
    """Containers are entries in a dict: running or stopped."""

    def __init__(self) -> None:
        self.running: dict[str, Handle] = {}
        self.stopped: list[str] = []
        self.start_delay = 0.0

    async def start_container(self, pod: dict[str, Any], *args: Any, **kwargs: Any) -> Handle:
        await asyncio.sleep(self.start_delay)
        uid = pod["metadata"]["uid"]
        self.running[uid] = Handle(uid)
        return self.running[uid]

    async def list(self) -> list[Handle]:
        return list(self.running.values())

    async def stop_container(self, handle: Handle, grace: float) -> None:
        if self.running.pop(handle.pod_uid, None) is not None:
            self.stopped.append(handle.pod_uid)


class Now:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def make(tmp_path: Path, bound: set[str], runtime: FakeRuntime, now: Now,
         revoked: list[set[str]]) -> Fence:
    async def list_bound() -> set[str]:
        return set(bound)

    return Fence(runtime, TIMING, list_bound=list_bound, known=lambda: set(runtime.running),
                 revoke=revoked.append, deadline_file=tmp_path / "deadline", monotonic=now)


def pod(uid: str) -> dict[str, Any]:
    return {"metadata": {"uid": uid}}


async def settle(fence: Fence) -> None:
    for _ in range(20):
        await asyncio.sleep(0)
    if fence._recovering is not None:
        await fence._recovering


async def test_closed_until_first_renewal_then_open(tmp_path: Path) -> None:
    runtime, now, revoked = FakeRuntime(), Now(), []
    fence = make(tmp_path, {"a"}, runtime, now, revoked)
    gated = FencedRuntime(runtime, fence)
    start = asyncio.ensure_future(gated.start_container(pod("a")))
    await asyncio.sleep(0.01)
    assert not start.done()  # nothing runs before the lease is proven
    fence.renewed(now())
    await settle(fence)
    await asyncio.wait_for(start, 1)
    assert "a" in runtime.running
    assert read_deadline(tmp_path / "deadline") == pytest.approx(now() + TIMING.fence_timeout)


async def test_lapse_kills_everything_and_blocks_starts(tmp_path: Path) -> None:
    runtime, now, revoked = FakeRuntime(), Now(), []
    fence = make(tmp_path, {"a", "b"}, runtime, now, revoked)
    gated = FencedRuntime(runtime, fence)
    fence.renewed(now())
    await settle(fence)
    await gated.start_container(pod("a"))
    await gated.start_container(pod("b"))
    runner = asyncio.ensure_future(fence.run())
    try:
        now.t += TIMING.fence_timeout + 0.01
        for _ in range(50):
            await asyncio.sleep(0.01)
            if not runtime.running:
                break
        assert fence.fenced and fence.lapses == 1
        assert runtime.running == {} and sorted(runtime.stopped) == ["a", "b"]
        blocked = asyncio.ensure_future(gated.start_container(pod("a")))
        await asyncio.sleep(0.05)
        assert not blocked.done()
        # Back: "b" was evicted meanwhile; "a" still bound and may restart.
        fence._list_bound = _const({"a"})
        fence._known = lambda: {"a", "b"}
        fence.renewed(now())
        await settle(fence)
        await asyncio.wait_for(blocked, 1)
        assert revoked == [{"b"}]
        with pytest.raises(StartError, match="unbound"):
            await gated.start_container(pod("b"))
    finally:
        runner.cancel()


async def test_a_frozen_agent_notices_the_lapse_on_its_next_renewal(tmp_path: Path) -> None:
    runtime, now, revoked = FakeRuntime(), Now(), []
    fence = make(tmp_path, {"a"}, runtime, now, revoked)
    fence.renewed(now())
    await settle(fence)
    await FencedRuntime(runtime, fence).start_container(pod("a"))
    now.t += 10  # SIGSTOP: no fence loop ran; the watchdog would have killed
    fence.renewed(now())
    assert fence.fenced and fence.lapses == 1
    await settle(fence)
    assert not fence.fenced
    assert runtime.stopped == ["a"]


async def test_a_start_in_flight_at_the_lapse_is_killed_when_it_lands(tmp_path: Path) -> None:
    runtime, now, revoked = FakeRuntime(), Now(), []
    fence = make(tmp_path, {"a"}, runtime, now, revoked)
    fence.renewed(now())
    await settle(fence)
    runtime.start_delay = 0.1
    start = asyncio.ensure_future(FencedRuntime(runtime, fence).start_container(pod("a")))
    await asyncio.sleep(0.01)
    fence._lapse("test")
    await start
    for _ in range(50):
        await asyncio.sleep(0.01)
        if not runtime.running:
            break
    assert runtime.running == {}


def _const(value: set[str]) -> Any:
    async def f() -> set[str]:
        return set(value)
    return f


# -- the watchdog process ----------------------------------------------------------


def _fake_container(root: Path, name: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(["sleep", "60"], start_new_session=True)
    cdir = root / name
    cdir.mkdir(parents=True)
    (cdir / "started.json").write_text(
        json.dumps({"pid": proc.pid, "startTicks": proc_start_ticks(proc.pid)}))
    return proc


def test_watchdog_kills_containers_once_the_deadline_passes(tmp_path: Path) -> None:
    containers = tmp_path / "containers"
    deadline = tmp_path / "deadline"
    write_deadline(deadline, time.monotonic() + 1.0)
    victim = _fake_container(containers, "c1")
    pid = spawn_watchdog(deadline, containers)
    assert pid is not None
    try:
        assert spawn_watchdog(deadline, containers) == pid  # one per agent
        time.sleep(0.5)
        assert victim.poll() is None  # before the deadline: untouched
        victim.wait(timeout=3)  # after it: killed
        assert victim.returncode == -signal.SIGKILL
        # With nothing left to guard it leaves by itself.
        deadline_at = time.monotonic() + 15
        while time.monotonic() < deadline_at and _alive(pid):
            time.sleep(0.1)
        assert not _alive(pid)
    finally:
        for p in (pid, victim.pid):
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        victim.wait()


def _alive(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def test_watchdog_usage_error() -> None:
    out = subprocess.run([sys.executable, "-m", "corral.agent.fencing"], capture_output=True,
                         text=True)
    assert out.returncode != 0 and "usage" in out.stderr
