"""How a container's command enters its pod: cgroup, namespaces, volumes, user.

The container must be in its cgroup and the pod's namespaces from its first
instruction. The shim used to get it there in the forked child, between
fork and exec (a ``preexec_fn``): Python code run in a copy of the shim. The
fork then copied the page tables of a whole interpreter, every object the
child touched was copied once more (~440 page faults), and exec threw it all
away: about a tenth of a process pod's start CPU.

Now the shim steps in itself, spawns, and steps back out: it joins the
container's cgroup, enters the pod's IPC, UTS and mount namespaces (and, for
volumes, a mount namespace of the container's own, made from the pod's),
and spawns the command with nothing but C between fork and exec -- CPython's
``vfork`` path when no user is switched. The child inherits all of it. Then
the shim goes back to the namespaces and cgroup it came from. CRI-O's conmon
and runc set up a container from outside in the same spirit.

While the shim is inside, it counts in the container's cgroup: one more
process for ``pids.max`` (raised by one for that moment, so the container
itself never gets more than its limit) and a few pages of memory.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from corral.runtime import namespaces as ns
from corral.runtime.cgroups import Cgroup, move_self
from corral.runtime.rootfs import ContainerBinds

POD_NAMESPACE_ORDER = ("ipc", "uts", "mnt")
"""The pod's namespaces the shim steps into for a spawn. The PID namespace
is set for its children only, and the network one for the whole shim,
before the pod's sandbox is made (shim._prepare_isolation)."""


@dataclass
class PodEntry:
    """What a container's process must be born in, and how the shim gets there."""

    cwd: str
    cgroup: Cgroup | None = None
    pids_limit: int | None = None
    pod_ns: list[tuple[int, int]] = field(default_factory=list)
    """Open descriptors of the pod's namespaces (``/proc/<init>/ns/*``) and their types."""
    binds: ContainerBinds | None = None
    user: dict[str, Any] | None = None

    @classmethod
    def of_sandbox(cls, init_pid: int, **kwargs: Any) -> PodEntry:
        fds = []
        try:
            for name in POD_NAMESPACE_ORDER:
                fd = os.open(f"/proc/{init_pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC)
                fds.append((fd, ns.NS_FILES[name]))
        except BaseException:
            for fd, _ in fds:
                os.close(fd)
            raise
        return cls(pod_ns=fds, **kwargs)

    def popen_args(self) -> dict[str, Any]:
        """Directory and user for ``subprocess.Popen``, applied in C in the
        child (the directory resolved in the pod's mount namespace). The
        supplementary groups are cleared only with a group, as before."""
        args: dict[str, Any] = {"cwd": self.cwd}
        user = self.user or {}
        if user.get("gid") is not None:
            args["group"] = int(user["gid"])
            args["extra_groups"] = []
        if user.get("uid") is not None:
            args["user"] = int(user["uid"])
        return args

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        """The shim inside the container's cgroup and namespaces for the
        spawn. Stepping back out is in ``finally``: a shim left in a pod's
        mount namespace would write its exit record where nobody reads it,
        so a failure to get out is an error of the start."""
        own_ns: list[tuple[int, int]] = []
        own_cgroup: list[Path] = []
        try:
            wanted = [nstype for _, nstype in self.pod_ns]
            if self.binds is not None and ns.CLONE_NEWNS not in wanted:
                wanted.append(ns.CLONE_NEWNS)
            for name in POD_NAMESPACE_ORDER:
                if ns.NS_FILES[name] in wanted:
                    fd = os.open(f"/proc/self/ns/{name}", os.O_RDONLY | os.O_CLOEXEC)
                    own_ns.append((fd, ns.NS_FILES[name]))
            if self.cgroup is not None:
                own_cgroup = self.cgroup.own_dirs()
                if self.pids_limit is not None:
                    self.cgroup.set_pids_max(self.pids_limit + 1)  # the shim's own slot
                self.cgroup.join_self()
            for fd, nstype in self.pod_ns:
                ns.setns(fd, nstype)
            if self.binds is not None:
                self.binds.enter()
            yield
        finally:
            try:
                for fd, nstype in reversed(own_ns):
                    ns.setns(fd, nstype)
                if self.cgroup is not None and self.pids_limit is not None:
                    self.cgroup.set_pids_max(self.pids_limit)
                if own_cgroup:
                    move_self(own_cgroup)
            finally:
                for fd, _ in own_ns:
                    os.close(fd)

    def close(self) -> None:
        for fd, _ in self.pod_ns:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.pod_ns = []
        if self.binds is not None:
            self.binds.close()
