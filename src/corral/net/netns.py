"""Named network namespaces (``/run/netns/NAME``), made and removed in process.

``ip netns add NAME`` and then the CNI ``loopback`` plugin were two programs
run for every pod with a network of its own: an ``ip`` and a Go binary,
each started, run and torn down (about 2 ms of CPU together, and two
process starts of waiting in a burst). What they do is small, and done
here the same way:

- ``/run/netns`` is made a mount point with shared propagation (once), so a
  namespace mounted there later shows in mount namespaces made before;
- an empty file is created there, and a new network namespace is bound
  onto it from a thread that unshared one (network namespaces belong to a
  thread, so nothing else in the process moves; the thread then ends and
  the bind mount alone keeps the namespace);
- that thread brings ``lo`` up inside, as the loopback plugin does.

``ip netns del NAME`` is the lazy unmount and the unlink.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import struct
import threading
from pathlib import Path

from corral.runtime import namespaces as ns

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
IFREQ = "16sh22x"

_shared: set[str] = set()
_sharing = threading.Lock()  # two first pods at once must not bind the directory twice


class NetnsError(OSError):
    pass


def create(path: Path) -> None:
    """A new network namespace at ``path`` (in a shared ``/run/netns``-like
    directory), its ``lo`` up. Raises :class:`NetnsError` if it exists."""
    _share(path.parent)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0)
    except FileExistsError:
        raise NetnsError(f"network namespace {path}: already exists") from None
    except OSError as exc:
        raise NetnsError(f"network namespace {path}: {exc.strerror}") from None
    os.close(fd)
    failed: list[BaseException] = []
    thread = threading.Thread(target=_bind_new, args=(path, failed), name=f"netns {path.name}")
    thread.start()
    thread.join()
    if failed:
        remove(path)
        raise NetnsError(f"network namespace {path}: {failed[0]}") from failed[0]


def remove(path: Path) -> None:
    """Unmount and delete; nothing there is fine."""
    with contextlib.suppress(OSError):  # not mounted (a placeholder): the unlink is all
        ns.unmount(str(path), detach=True)
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def _bind_new(path: Path, failed: list[BaseException]) -> None:
    """In a thread of its own, which ends right after: unshare, bind, lo up."""
    try:
        ns.unshare(ns.CLONE_NEWNET)
        ns.mount(f"/proc/self/task/{threading.get_native_id()}/ns/net", str(path), None, ns.MS_BIND)
        loopback_up()
    except BaseException as exc:
        failed.append(exc)


def loopback_up() -> None:
    """``ip link set lo up`` in the calling thread's network namespace."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        req = struct.pack(IFREQ, b"lo", 0)
        flags = struct.unpack(IFREQ, fcntl.ioctl(sock, SIOCGIFFLAGS, req))[1]
        if not flags & IFF_UP:
            fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack(IFREQ, b"lo", flags | IFF_UP))


def _share(directory: Path) -> None:
    """Make ``directory`` a mount point with shared propagation, as iproute2
    does for /run/netns: bound onto itself first if it is not one yet."""
    key = str(directory)
    if key in _shared:
        return
    with _sharing:
        if key in _shared:
            return
        directory.mkdir(mode=0o755, parents=True, exist_ok=True)
        try:
            ns.mount("", key, "none", ns.MS_SHARED | ns.MS_REC)
        except OSError:  # EINVAL: not a mount point yet
            ns.mount(key, key, "none", ns.MS_BIND | ns.MS_REC)
            ns.mount("", key, "none", ns.MS_SHARED | ns.MS_REC)
        _shared.add(key)
