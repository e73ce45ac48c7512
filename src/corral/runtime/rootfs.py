"""A root file system of the pod's own, and volumes at their mountPath.

A process-runtime pod runs the host's programs, so its root is the host's
``/`` seen through an overlay: the host is the read-only lower layer, and
whatever the pod writes (including the directories a ``mountPath`` needs)
lands in ``upper/`` under the pod's state directory, never on the host. The
pod's init builds that tree in its mount namespace (the host's other file
systems bound back at their places, a fresh ``/proc`` for the pod's PID
namespace, the host's ``/dev`` with a private ``/dev/shm``, a private
``/tmp`` and a tmpfs ``/run``) and pivots into it; the old root is then
detached, so nothing in the pod can reach the host's tree except through
what was bound in.

Each container gets a mount namespace of its own, copied from the pod's
(as each Kubernetes container has its own mounts over the shared sandbox),
and its volumes are attached there. The volume's directory is cloned as a
detached mount (``open_tree``) while its shim is still on the host, then
attached (``move_mount``) inside the container's namespace, where the
``mountPath`` is resolved against the pod's root: a symlink planted in the
pod cannot point a mount at the host. A whole-directory mount of a
configMap or secret volume sees updates, because the agent swaps the
volume's ``..data`` symlink inside that directory.
"""

from __future__ import annotations

import ctypes
import os
import platform
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from corral.runtime import namespaces as ns

# System calls Python has no wrapper for (same numbers on x86-64 and the
# generic table arm64 uses, except pivot_root).
SYS_OPEN_TREE = 428
SYS_MOVE_MOUNT = 429
SYS_MOUNT_SETATTR = 442
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}.get(platform.machine(), 155)
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC
AT_RECURSIVE = 0x8000
AT_EMPTY_PATH = 0x1000
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOUNT_ATTR_RDONLY = 0x1
MS_RDONLY = 0x1
MS_REMOUNT = 0x20

HOST_SKIP = ("/proc", "/sys", "/dev", "/tmp", "/run")
"""Mount points the pod gets its own (or a fresh) file system at."""
UNSAFE_IN_OPTIONS = (",", ":", "\\", "\n")

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class RootfsError(OSError):
    """The pod's root or a container's volume could not be set up."""


def _syscall(number: int, *args: Any, what: str) -> int:
    result = _libc.syscall(ctypes.c_long(number), *args)
    if result < 0:
        err = ctypes.get_errno()
        raise RootfsError(f"{what}: {os.strerror(err)}")
    return int(result)


def supported(state_dir: Path) -> str | None:
    """None when pods on this node can get an overlay root, else why not.
    Tried for real in a throw-away child (a kernel may lack overlayfs, or
    the state dir's file system may not take an upper layer)."""
    why = ns.supported()
    if why is not None:
        return why
    if any(ch in str(state_dir) for ch in UNSAFE_IN_OPTIONS):
        return f"the state directory {state_dir} has characters overlayfs options cannot carry"
    try:
        with open("/proc/filesystems") as f:
            if "overlay" not in f.read().split():
                return "the kernel has no overlayfs"
    except OSError as exc:
        return f"reading /proc/filesystems: {exc}"
    probe = Path(state_dir) / ".rootfs-probe"
    for sub in ("upper", "work", "root"):
        (probe / sub).mkdir(parents=True, exist_ok=True)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the forked child
        code = 1
        try:
            ns.unshare(ns.CLONE_NEWNS)
            ns.mount(None, "/", None, ns.MS_REC | ns.MS_PRIVATE)
            _mount_overlay(probe)
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    _remove_tree(probe)
    if os.waitstatus_to_exitcode(status) != 0:
        return f"overlayfs over / with an upper layer in {state_dir} does not mount here"
    return None


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def _mount_overlay(pod_dir: Path, mountpoint: Path | None = None) -> Path:
    root, upper, work = mountpoint or pod_dir / "root", pod_dir / "upper", pod_dir / "work"
    for d in (root, upper, work):
        d.mkdir(exist_ok=True)
    ns.mount("overlay", str(root), "overlay", 0, f"lowerdir=/,upperdir={upper},workdir={work}")
    return root


def host_mounts(mountinfo: str) -> list[str]:
    """The host's file systems mounted directly on ``/`` that the pod's
    root must show too (``/home`` on its own disk, say): everything but
    ``/`` itself and what the pod gets its own of. Their submounts come
    along with a recursive bind."""
    rows = []
    root_id = None
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) < 5:
            continue
        mount_id, parent_id, point = fields[0], fields[1], _unescape(fields[4])
        if point == "/":
            root_id = mount_id
        rows.append((mount_id, parent_id, point))
    out = []
    for _, parent_id, point in rows:
        if point == "/" or parent_id != root_id:
            continue
        if any(point == s or point.startswith(s + "/") for s in HOST_SKIP):
            continue
        out.append(point)
    return sorted(set(out))


def _unescape(text: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes."""
    for code, ch in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        text = text.replace(code, ch)
    return text


def enter_pod_root(pod_dir: Path, tmp_source: str, keep: list[str], mask: list[str],
                   mountpoint: Path | None = None) -> None:
    """In the pod's fresh mount (and PID) namespace: build its root and
    pivot into it. ``keep``: host paths under /tmp bound back into the
    private /tmp; ``mask``: host directories the pod must not see (the
    agent's data, other pods' volumes), covered by an empty read-only tmpfs.
    ``mountpoint``: where the root is assembled (default ``pod_dir/root``)."""
    root = _mount_overlay(pod_dir, mountpoint)
    r = str(root)
    with open("/proc/self/mountinfo") as f:
        extra = host_mounts(f.read())
    for point in extra:
        if os.path.isdir(point) and os.path.isdir(r + point):
            ns.mount(point, r + point, None, ns.MS_BIND | ns.MS_REC)
    ns.mount("proc", r + "/proc", "proc", ns.MS_NOSUID | ns.MS_NODEV | ns.MS_NOEXEC)
    ns.mount("/sys", r + "/sys", None, ns.MS_BIND | ns.MS_REC)
    ns.mount("/dev", r + "/dev", None, ns.MS_BIND | ns.MS_REC)
    if os.path.isdir(r + "/dev/shm"):
        ns.mount("shm", r + "/dev/shm", "tmpfs", ns.MS_NOSUID | ns.MS_NODEV, "mode=1777")
    os.makedirs(r + "/run", exist_ok=True)
    ns.mount("tmpfs", r + "/run", "tmpfs", ns.MS_NOSUID | ns.MS_NODEV, "mode=755")
    os.makedirs(r + "/tmp", exist_ok=True)
    ns.mount(tmp_source, r + "/tmp", None, ns.MS_BIND)
    for path in keep:
        _bind_into(r, path)
    for path in mask:
        if os.path.isdir(r + path):
            ns.mount("tmpfs", r + path, "tmpfs", ns.MS_NOSUID | ns.MS_NODEV | MS_RDONLY, "mode=755")
    os.chdir(r)
    _syscall(SYS_PIVOT_ROOT, b".", b".", what="pivot_root")
    ns.unmount(".", detach=True)  # the host's root, now under "."
    os.chdir("/")


def _bind_into(root: str, path: str) -> None:
    if not os.path.exists(path):
        return
    target = root + path
    if os.path.isdir(path):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        open(target, "a").close()
    ns.mount(path, target, None, ns.MS_BIND | ns.MS_REC)


@dataclass
class Bind:
    """One volume of one container: a detached clone of the host directory
    (or file), to be attached at ``target`` inside the container."""

    fd: int
    target: str
    read_only: bool
    is_dir: bool


class ContainerBinds:
    """A container's volumes, cloned on the host by its shim, then attached
    by that same shim in the container's own mount namespace, just before
    it spawns the container there (runtime/entry.py)."""

    def __init__(self, mounts: list[dict[str, Any]]) -> None:
        self.binds: list[Bind] = []
        try:
            # Parents before children (/data before /data/cache), as containerd
            # orders a container's mounts, so a nested mountPath is not hidden.
            for m in sorted(mounts, key=lambda m: len([p for p in str(m["target"]).split("/") if p])):
                self.binds.append(_open_bind(m))
        except BaseException:
            self.close()
            raise

    def enter(self) -> None:
        """Already in the pod's mount namespace: a mount namespace of the
        container's own, copied from it, then every volume in it."""
        ns.unshare(ns.CLONE_NEWNS)
        for bind in self.binds:
            _attach(bind)

    def close(self) -> None:
        for fd in [b.fd for b in self.binds]:
            try:
                os.close(fd)
            except OSError:
                pass
        self.binds = []


def _open_bind(m: dict[str, Any]) -> Bind:
    source, target = str(m["source"]), str(m["target"])
    if not target.startswith("/"):
        raise RootfsError(f"mountPath {target!r}: must be an absolute path")
    try:
        mode = os.stat(source).st_mode
    except OSError as exc:
        raise RootfsError(f"volume source {source}: {exc.strerror}") from None
    fd = _syscall(
        SYS_OPEN_TREE, ctypes.c_int(-100), source.encode(),
        ctypes.c_uint(OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE),
        what=f"cloning {source} for {target}",
    )
    bind = Bind(fd, target, bool(m.get("readOnly")), stat.S_ISDIR(mode))
    if bind.read_only:
        _make_read_only(fd, target)
    return bind


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def _make_read_only(fd: int, target: str) -> None:
    """Read-only for the whole cloned tree (a tmpfs emptyDir included)."""
    attr = _MountAttr(MOUNT_ATTR_RDONLY, 0, 0, 0)
    _syscall(
        SYS_MOUNT_SETATTR, ctypes.c_int(fd), b"",
        ctypes.c_uint(AT_EMPTY_PATH | AT_RECURSIVE), ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)),
        what=f"making {target} read-only",
    )


def _attach(bind: Bind) -> None:
    """mkdir -p (or touch) the mount point inside the pod's root, then
    attach the clone there."""
    where = f'error mounting a volume at "{bind.target}"'
    try:
        if bind.is_dir:
            os.makedirs(bind.target, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(bind.target) or "/", exist_ok=True)
            if not os.path.exists(bind.target):
                open(bind.target, "a").close()
    except OSError as exc:
        raise RootfsError(f"{where}: making the mount point: {exc.strerror}") from None
    _syscall(
        SYS_MOVE_MOUNT, ctypes.c_int(bind.fd), b"", ctypes.c_int(-100), bind.target.encode(),
        ctypes.c_uint(MOVE_MOUNT_F_EMPTY_PATH), what=where,
    )
