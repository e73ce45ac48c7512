"""Memory-backed state directories of a node (a tmpfs, as ``/run`` is).

The agent and the process runtime create and delete a few dozen small files
per pod (container specs, pid files, secret and token volumes). On an ext4
root without a journal every create scans recently deleted inodes, which
cost a tenth of the CPU of a pod burst; containerd keeps such state in
``/run`` and the kubelet mounts a tmpfs per secret volume (so secrets never
reach a disk) for the same reasons. A :class:`MemoryDir` is one such tmpfs,
mounted once per directory.

Crash-only: the mount outlives the agent process (pods do too), so a new
agent finds it in ``/proc/self/mountinfo`` and uses it as it is. After a
reboot the directory is an empty one on disk again: it is mounted afresh,
and what was in it (like the processes it described) is gone. Without root,
or where mount fails, the directory stays a plain one, said once in the log.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from corral.runtime import namespaces as ns

log = logging.getLogger(__name__)

SOURCE = "corral-state"
"""The tmpfs's source name in mountinfo: what marks a mount as corral's."""
MNT_DETACH = 2

_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
_said: set[str] = set()


@dataclass(frozen=True)
class MountEntry:
    mount_point: str
    fstype: str
    source: str


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes."""
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mounts(mountinfo: str | None = None) -> list[MountEntry]:
    """The mounts of this process's mount namespace, in mount order."""
    if mountinfo is None:
        try:
            with open("/proc/self/mountinfo") as f:
                mountinfo = f.read()
        except OSError:
            return []
    out = []
    for line in mountinfo.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        sep = fields.index("-")
        if len(fields) < sep + 3 or len(fields) < 5:
            continue
        out.append(MountEntry(_unescape(fields[4]), fields[sep + 1], _unescape(fields[sep + 2])))
    return out


def mounted_at(path: Path, mountinfo: str | None = None) -> MountEntry | None:
    """The topmost mount whose mount point is exactly ``path``, if any."""
    where = os.path.realpath(path)
    found = None
    for entry in mounts(mountinfo):
        if entry.mount_point == where:
            found = entry
    return found


def ours_under(root: Path, mountinfo: str | None = None) -> list[str]:
    """Mount points of corral's state tmpfs at or below ``root``, deepest first."""
    top = os.path.realpath(root).rstrip("/")
    found = [e.mount_point for e in mounts(mountinfo)
             if e.source == SOURCE and (e.mount_point == top or e.mount_point.startswith(top + "/"))]
    return sorted(set(found), key=lambda p: (-p.count("/"), p))


def decide(euid: int, existing: MountEntry | None, wanted: bool = True) -> str:
    """What to do with a state directory: ``use`` a mount already there
    (an earlier agent's, kept while its pods ran), ``mount`` a fresh tmpfs,
    or keep a ``plain`` directory (not asked for, or no root to mount)."""
    if not wanted:
        return "plain"
    if existing is not None and existing.fstype == "tmpfs":
        return "use"
    if existing is not None:
        return "plain"  # somebody mounted something else there on purpose
    return "mount" if euid == 0 else "plain"


def unmount(path: str | Path) -> bool:
    """Unmount ``path``; lazily if busy (a shell of a test sitting in it).
    False when nothing was unmounted."""
    raw = os.fsencode(str(path))
    if _libc.umount2(raw, 0) == 0:
        return True
    if ctypes.get_errno() == 16:  # EBUSY
        return _libc.umount2(raw, MNT_DETACH) == 0
    return False


def unmount_under(root: Path) -> int:
    """Unmount every state tmpfs at or below ``root`` (before the tree is
    deleted: removing a data dir must not leak mounts or hit EBUSY)."""
    return sum(1 for point in ours_under(root) if unmount(point))


class MemoryDir:
    """A directory that lives in memory when it can.

    ``size``: the tmpfs's limit (tmpfs takes only what is written; the limit
    bounds what a flood of secrets could take). ``mode``: of its root."""

    def __init__(self, path: Path, *, size: str = "25%", mode: int = 0o755, wanted: bool = True) -> None:
        self.path = Path(path)
        self.size = size
        self.mode = mode
        self.wanted = wanted
        self.in_memory = False

    def open(self) -> Path:
        """Mount (or find) the tmpfs; idempotent. Falls back to a plain
        directory, telling the log once per reason."""
        self.path.mkdir(parents=True, exist_ok=True)
        action = decide(os.geteuid(), mounted_at(self.path), self.wanted)
        if action == "mount":
            try:
                ns.mount(SOURCE, str(self.path), "tmpfs", ns.MS_NOSUID | ns.MS_NODEV,
                         f"mode={self.mode:o},size={self.size}")
            except OSError as exc:
                _say_once(f"mount failed: {exc.strerror}", self.path)
                action = "plain"
        elif action == "plain" and self.wanted:
            _say_once("not root" if os.geteuid() != 0 else "another file system is mounted there",
                      self.path)
        self.in_memory = action != "plain"
        return self.path

    def close(self) -> bool:
        """Unmount if in memory and empty (nothing left that a later agent
        would need); returns whether it unmounted."""
        if not self.in_memory or _holds_anything(self.path):
            return False
        entry = mounted_at(self.path)
        if entry is None or entry.source != SOURCE:
            return False  # a tmpfs somebody else put there is theirs to unmount
        done = unmount(self.path)
        self.in_memory = not done
        return done


def _holds_anything(path: Path) -> bool:
    """Is there an entry (a container's or a pod's) in one of the top
    directories (``containers/``, ``pods/``, ...), or a file at the top?"""
    try:
        with os.scandir(path) as tops:
            for top in tops:
                if not top.is_dir(follow_symlinks=False):
                    return True
                with os.scandir(top.path) as inside:
                    if any(True for _ in inside):
                        return True
    except OSError:
        return False
    return False


def _say_once(reason: str, path: Path) -> None:
    if reason in _said:
        return
    _said.add(reason)
    log.warning("node state in %s stays on disk (%s); pods start slower and secrets "
                "are written to disk", path, reason)
