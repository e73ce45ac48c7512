"""One cgroup per container of the process runtime, on cgroup v1 or v2.

The limits are the ones :class:`~corral.runtime.limits.ContainerLimits`
reads from the pod: CFS cpu quota, a hard memory limit without swap (so the
kernel OOM-kills instead of swapping, and we can say ``OOMKilled``), and a
pid limit. v1 keeps each controller in its own hierarchy
(``/sys/fs/cgroup/{cpu,memory,pids}/corral/<id>``); v2 has one tree, in which
``corral/`` must have the controllers enabled for its children.
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
from dataclasses import dataclass
from pathlib import Path

from corral.runtime.limits import CFS_PERIOD_US, ContainerLimits

ROOT = Path("/sys/fs/cgroup")
V1_CONTROLLERS = ("cpu", "memory", "pids")
PREFIX = "corral"


def detect(root: Path = ROOT) -> int | None:
    """2 on a unified hierarchy with the controllers we need, 1 on v1,
    None when neither is usable (not root, no cgroupfs)."""
    if os.geteuid() != 0:
        return None
    if (root / "cgroup.controllers").exists():
        have = set((root / "cgroup.controllers").read_text().split())
        return 2 if {"cpu", "memory", "pids"} <= have else None
    if all((root / c / "cgroup.procs").exists() for c in V1_CONTROLLERS):
        return 1
    return None


@dataclass(frozen=True)
class Cgroup:
    version: int
    name: str
    root: Path = ROOT

    @property
    def dirs(self) -> list[Path]:
        if self.version == 2:
            return [self.root / PREFIX / self.name]
        return [self.root / c / PREFIX / self.name for c in _v1_hierarchies(self.root)]

    def _dir(self, controller: str) -> Path:
        if self.version == 2:
            return self.root / PREFIX / self.name
        return self.root / controller / PREFIX / self.name

    def create(self, limits: ContainerLimits) -> None:
        if self.version == 2:
            _enable_v2_controllers(self.root)
        for d in self.dirs:
            d.mkdir(parents=True, exist_ok=True)
        if self.version == 2:
            self._limit_v2(limits)
        else:
            self._limit_v1(limits)

    def _limit_v1(self, limits: ContainerLimits) -> None:
        cpu, mem, pids = self._dir("cpu"), self._dir("memory"), self._dir("pids")
        if limits.cpu_quota_us is not None:
            _write(cpu / "cpu.cfs_period_us", CFS_PERIOD_US)
            _write(cpu / "cpu.cfs_quota_us", limits.cpu_quota_us)
        if limits.memory_bytes is not None:
            _write(mem / "memory.limit_in_bytes", limits.memory_bytes)
            with contextlib.suppress(OSError):  # absent without swap accounting
                _write(mem / "memory.memsw.limit_in_bytes", limits.memory_bytes)
            with contextlib.suppress(OSError):
                _write(mem / "memory.swappiness", 0)
        if limits.pids is not None:
            _write(pids / "pids.max", limits.pids)

    def _limit_v2(self, limits: ContainerLimits) -> None:
        d = self._dir("")
        if limits.cpu_quota_us is not None:
            _write(d / "cpu.max", f"{limits.cpu_quota_us} {CFS_PERIOD_US}")
        if limits.memory_bytes is not None:
            _write(d / "memory.max", limits.memory_bytes)
            with contextlib.suppress(OSError):
                _write(d / "memory.swap.max", 0)
        if limits.pids is not None:
            _write(d / "pids.max", limits.pids)

    def join_self(self) -> None:
        """Move the calling process in (``0`` means "me" in cgroup.procs).
        The shim does so around the container's spawn, so the command's
        first instruction already runs under the limits (runtime/entry.py)."""
        move_self(self.dirs)

    def own_dirs(self) -> list[Path]:
        """Where the calling process is now in each of this cgroup's
        hierarchies, in the order of :attr:`dirs`: where it goes back to."""
        return own_dirs(self.version, self.root)

    def set_pids_max(self, value: int) -> None:
        _write(self._dir("pids") / "pids.max", value)

    def oom_kills(self) -> int:
        """How many times the kernel OOM-killed a process of this cgroup."""
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        try:
            text = (self._dir("memory") / name).read_text()
        except OSError:
            return 0
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0

    def cpu_usage_ns(self) -> int | None:
        """CPU time used by the container so far (for statistics)."""
        try:
            if self.version == 2:
                stat = self.cpu_stat()
                return stat["usage_usec"] * 1000 if "usage_usec" in stat else None
            return int((self._dir("cpuacct") / "cpuacct.usage").read_text())
        except (OSError, ValueError):
            return None

    def memory_bytes(self) -> int | None:
        name = "memory.current" if self.version == 2 else "memory.usage_in_bytes"
        try:
            return int((self._dir("memory") / name).read_text())
        except (OSError, ValueError):
            return None

    def cpu_stat(self) -> dict[str, int]:
        try:
            text = (self._dir("cpu") / "cpu.stat").read_text()
        except OSError:
            return {}
        return {k: int(v) for k, _, v in (ln.partition(" ") for ln in text.splitlines()) if v}

    def remove(self, timeout: float = 2.0) -> None:
        """rmdir each directory; the kernel refuses while a process is still
        in it, so retry briefly (killed processes take a moment to go)."""
        deadline = time.monotonic() + timeout
        for d in self.dirs:
            while True:
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.02)


def prune_empty(version: int, min_age: float = 60.0, root: Path = ROOT) -> None:
    """Remove pod and container cgroups under corral/ that hold no process
    and are older than ``min_age`` (a fresh one may be about to be joined).
    Leftovers come from agents whose data was deleted under running pods;
    the kernel refuses to remove a cgroup that is still in use."""
    bases = [root / PREFIX] if version == 2 else [root / c / PREFIX for c in _v1_hierarchies(root)]
    now = time.time()
    for base in bases:
        try:
            pods = list(base.iterdir())
        except OSError:
            continue
        for pod in (p for p in pods if p.is_dir()):
            for d in [*(c for c in pod.iterdir() if c.is_dir()), pod]:
                try:
                    if now - d.stat().st_mtime > min_age:
                        d.rmdir()
                except OSError:
                    continue


def move_self(dirs: list[Path]) -> None:
    for d in dirs:
        with open(d / "cgroup.procs", "w") as f:
            f.write("0")


def own_dirs(version: int, root: Path = ROOT) -> list[Path]:
    """The calling process's cgroup directories (from /proc/self/cgroup),
    one per hierarchy in the order :attr:`Cgroup.dirs` lists them."""
    with open("/proc/self/cgroup") as f:
        lines = [line.rstrip("\n").split(":", 2) for line in f if line.count(":") >= 2]
    if version == 2:
        found = next((p for h, _, p in lines if h == "0"), None)
        if found is None:
            raise OSError("/proc/self/cgroup: no unified (cgroup v2) hierarchy")
        return [root / found.lstrip("/")]
    out = []
    for name in _v1_hierarchies(root):
        found = next((p for _, controllers, p in lines if name in controllers.split(",")), None)
        if found is None:  # an OSError, so that a start fails with the reason, not the supervisor
            raise OSError(f"/proc/self/cgroup: no {name} hierarchy")
        out.append(root / name / found.lstrip("/"))
    return out


@functools.lru_cache(maxsize=4)
def _v1_hierarchies(root: Path) -> tuple[str, ...]:
    """cpu, memory, pids, and cpuacct where it is a hierarchy of its own
    (where it is co-mounted with cpu, the cpu directory already counts).
    Looked up once per process: the mounts do not change under a running
    agent, and each look costs a stat and two path resolutions, several
    times per container start."""
    out = list(V1_CONTROLLERS)
    acct = root / "cpuacct"
    if (acct / "cpuacct.usage").exists() and acct.resolve() != (root / "cpu").resolve():
        out.append("cpuacct")
    return tuple(out)


def _enable_v2_controllers(root: Path) -> None:
    base = root / PREFIX
    base.mkdir(exist_ok=True)
    want = {"cpu", "memory", "pids"}
    for parent in (root, base):
        have = set((parent / "cgroup.subtree_control").read_text().split())
        missing = want - have
        if missing:
            _write(parent / "cgroup.subtree_control", " ".join(f"+{c}" for c in sorted(missing)))


def _write(path: Path, value: object) -> None:
    with open(path, "w") as f:
        f.write(str(value))
