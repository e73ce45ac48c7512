"""A warm parent for container supervisors (``python -m corral.runtime.launcher SOCK``).

Starting a supervisor (:mod:`corral.runtime.shim`) as a new interpreter
costs 50-150 ms of CPU (interpreter start-up and imports), which was most of
a process pod's start time and the limit on a burst of pods. The launcher
has done those imports once; for each container it forks (about a
millisecond), and the fork becomes the supervisor. Like a zygote, it keeps
no state: each supervisor is detached (its own session; the kernel reaps it,
as the launcher ignores SIGCHLD, and init adopts it when the launcher goes),
so the launcher may die or be replaced without harm to running containers,
and the agent stays crash-only. One fork per container, and nothing waited
for: a double fork cost a second fork and exit of this process, and the
launcher waited for both before it took the next container of a burst.

Protocol, one connection per container: the agent sends the container's
directory and a newline; the supervisor answers on the same connection with
its one-line JSON report (started, or why not) and closes it. The socket is
in the abstract namespace (no path-length limit, nothing left on disk),
named after the runtime's state dir, and only peers with the launcher's own
uid are served (SO_PEERCRED), since a spec names a command to run.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import hashlib
import os
import signal
import socket
import struct
import sys
from pathlib import Path

# Warm imports: everything a supervisor needs, so that no fork imports anew.
from corral.runtime import cgroups, entry, init, limits, namespaces, rootfs, shim  # noqa: F401

PR_SET_PDEATHSIG = 1
ORPHAN_CHECK = 5.0


def address(state_dir: Path) -> str:
    """The abstract socket name of the launcher serving ``state_dir``."""
    digest = hashlib.sha256(str(Path(state_dir).resolve()).encode()).hexdigest()[:24]
    return f"\0corral-launcher-{digest}"


def serve(state_dir: Path) -> int:
    _die_with_parent()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        server.bind(address(state_dir))
    except OSError:
        print("busy", flush=True)  # another launcher serves this state dir
        return 0
    server.listen(128)
    server.settimeout(ORPHAN_CHECK)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # supervisors are reaped by the kernel
    print("ready", flush=True)
    _detach_stdio()
    # Every object so far is shared with the forks: out of the collector's
    # reach, a fork's collections do not write to (and so copy) those pages.
    gc.freeze()
    while True:
        try:
            conn, _ = server.accept()
        except TimeoutError:
            if not state_dir.is_dir():
                return 0  # the runtime's data is gone: nobody will call again
            continue
        try:
            if _peer_uid(conn) != os.geteuid():
                continue
            conn.settimeout(5.0)
            cdir = _read_line(conn)
            if cdir:
                _fork_supervisor(server, conn, Path(cdir))
        except OSError:
            pass
        finally:
            conn.close()


def _peer_uid(conn: socket.socket) -> int:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return int(struct.unpack("3i", creds)[1])


def _fork_supervisor(server: socket.socket, conn: socket.socket, cdir: Path) -> None:
    if os.fork() == 0:
        code = 1
        try:
            server.close()
            code = _become_supervisor(conn, cdir)
        finally:
            os._exit(code)


def _become_supervisor(conn: socket.socket, cdir: Path) -> int:
    """The fork: a session of its own, default signal dispositions (SIGCHLD
    above all: the shim waits for its container), the connection as stdout
    (the shim reports there, then detaches it), stderr into shim.log."""
    os.setsid()
    set_cmdline([sys.executable, "-m", "corral.runtime.shim", str(cdir)])
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    with contextlib.suppress(OSError):
        (cdir / "shim.pid").write_text(f"{os.getpid()} {shim.proc_start_ticks(os.getpid())}")
    conn.settimeout(None)
    os.dup2(conn.fileno(), 1)
    conn.close()
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    log = os.open(cdir / "shim.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    os.dup2(log, 2)
    os.close(log)
    sys.stdout = os.fdopen(1, "w", closefd=False)
    try:
        return shim.run(cdir)
    except BaseException as exc:  # the report says why, as a new shim would
        print(f"supervisor failed: {exc!r}", file=sys.stderr)
        return 1


CMDLINE_ROOM = 256
"""Extra argv bytes the launcher is started with, so each supervisor it
forks can show ``python -m corral.runtime.shim DIR`` as a directly started
one does (operators and scripts find supervisors by that command line)."""


def set_cmdline(argv: list[str]) -> bool:
    """Rewrite this process's argv area in place (as setproctitle does),
    when it fits; returns whether it did."""
    try:
        raw = Path("/proc/self/stat").read_bytes()
        fields = raw[raw.rindex(b")") + 2 :].split()
        start, end = int(fields[45]), int(fields[46])
        data = b"\0".join(a.encode() for a in argv) + b"\0"
        if len(data) > end - start:
            return False
        with open("/proc/self/mem", "r+b", buffering=0) as mem:
            mem.seek(start)
            mem.write(data.ljust(end - start, b"\0"))
        return True
    except (OSError, ValueError, IndexError):
        return False


def _read_line(conn: socket.socket) -> str:
    data = b""
    while not data.endswith(b"\n") and len(data) < 8192:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.decode().strip()


def _die_with_parent() -> None:
    """The launcher is the agent's helper: it goes when the agent does (the
    supervisors it made are detached and stay)."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def _detach_stdio() -> None:
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)


if __name__ == "__main__":
    # Run as a script this module is __main__; a pod's init (a fork) that
    # imports set_cmdline from it must find it loaded, not import it anew.
    sys.modules.setdefault("corral.runtime.launcher", sys.modules["__main__"])
    # argv[2], if any, is CMDLINE_ROOM bytes of room for set_cmdline.
    sys.exit(serve(Path(sys.argv[1])))
