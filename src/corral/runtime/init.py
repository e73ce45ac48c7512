"""The pod sandbox of the process runtime: namespaces held by a minimal init.

All containers of a pod share one PID, mount, UTS and IPC namespace, as
they share a sandbox in Kubernetes. The first container's supervisor (shim)
creates them: it forks its first child into a new PID namespace, as its
PID 1, and that child unshares the others. That init sets the hostname
to the pod's name, makes its mounts private, mounts a fresh /proc (so ``ps``
sees the pod only) and a private /tmp -- or, where overlayfs works, builds
the pod a root of its own and pivots into it (:mod:`corral.runtime.rootfs`),
so volumes can be mounted at their mountPath -- and then only reaps zombies (orphans
of the pod are reparented to it) and forwards termination signals to every
process of the pod. Later containers' shims enter these namespaces with
setns. When the init dies, the kernel kills everything left in the pod.

The init is a fork of the shim, not a new interpreter: a pod start pays a
fork (about a millisecond), not a Python start-up.

``sandbox.json`` in the pod's state directory (in memory, see
:mod:`corral.runtime.memfs`) records the init's pid and start time, so a
restarted agent (crash-only) finds the sandbox again.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

from corral.runtime import namespaces as ns

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)
TERM_WAIT = 10.0
READY_TIMEOUT = 10.0
ORPHAN_CHECK = 5.0


def _alive(pid: int, ticks: int | None) -> bool:
    from corral.runtime.shim import proc_start_ticks

    now = proc_start_ticks(pid)
    if now is None or (ticks is not None and now != ticks):
        return False
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return raw[raw.rindex(b")") + 2 : raw.rindex(b")") + 3] not in (b"Z", b"X")


def sandbox_pid(pod_dir: Path) -> int | None:
    """The pod's init if it is alive."""
    try:
        info = json.loads((pod_dir / "sandbox.json").read_text())
        pid, ticks = int(info["pid"]), info.get("startTicks")
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return pid if _alive(pid, ticks) else None


def ensure_sandbox(
    pod_dir: Path,
    hostname: str,
    keep: list[str],
    *,
    rootfs: bool = False,
    mask: list[str] | None = None,
    state_dir: Path | None = None,
) -> int:
    """The pid (host view) of the pod's init, started if there is none.
    Serialized by a lock file, so two containers starting at once share it.

    ``pod_dir`` holds what the pod writes (its /tmp, its root's upper layer)
    and stays on disk; ``state_dir`` (default: ``pod_dir``) the lock and
    ``sandbox.json``, small files the runtime keeps in memory."""
    from corral.runtime.shim import proc_start_ticks, write_json_atomic

    state = state_dir or pod_dir
    pod_dir.mkdir(parents=True, exist_ok=True)
    state.mkdir(parents=True, exist_ok=True)
    with open(state / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        pid = sandbox_pid(state)
        if pid is None and state != pod_dir:
            pid = sandbox_pid(pod_dir)  # a sandbox made before its state moved to memory
        if pid is not None:
            return pid
        (pod_dir / "tmp").mkdir(mode=0o1777, exist_ok=True)
        os.chmod(pod_dir / "tmp", 0o1777)
        # The root's mount point is an empty directory of the state dir (in
        # memory): one inode less to allocate on disk per pod.
        pid = _spawn(hostname, str(pod_dir / "tmp"), keep, rootfs, mask or [], str(state / "root"))
        write_json_atomic(state / "sandbox.json", {"pid": pid, "startTicks": proc_start_ticks(pid)})
        return pid


def _spawn(hostname: str, tmp_source: str, keep: list[str], rootfs: bool, mask: list[str],
           mountpoint: str) -> int:
    """Fork the pod's init straight into a new PID namespace: unshare
    (CLONE_NEWPID) moves only the caller's future children there, so the
    first child is PID 1; the caller's own is set back right after. One
    fork of the shim, not two: an intermediate process that unshared and
    forked again cost a fork and exit of a Python process (~2.5 ms of CPU)
    per pod. The other namespaces are unshared by the init itself."""
    r, w = os.pipe()
    own = os.open("/proc/self/ns/pid_for_children", os.O_RDONLY | os.O_CLOEXEC)
    init = None
    try:
        ns.unshare(ns.CLONE_NEWPID)
        init = os.fork()
        if init == 0:  # pragma: no cover - runs in the forked child, never returns
            _become_init(r, w, hostname, tmp_source, keep, rootfs, mask, mountpoint)
        ns.setns(own, ns.CLONE_NEWPID)  # in the parent only: the child is PID 1 there
    except BaseException:
        if init:  # forked, but this process could not step back: no half-made sandbox
            _reap_failed(init)
        os.close(r)
        os.close(w)
        raise
    finally:
        os.close(own)
    os.close(w)
    report = _read_report(r)
    for line in report.splitlines():
        word, _, rest = line.partition(" ")
        if word == "error":
            _reap_failed(init)
            raise OSError(f"creating the pod sandbox failed: {rest}")
    if "ready" not in report.split():
        _reap_failed(init)
        raise OSError(f"creating the pod sandbox failed: {report.strip() or 'no report'}")
    return init


def _become_init(r: int, w: int, hostname: str, tmp_source: str, keep: list[str], rootfs: bool,
                 mask: list[str], mountpoint: str) -> None:  # pragma: no cover - runs in the forked child
    try:
        os.close(r)
        os.setsid()
        ns.unshare(ns.POD_NAMESPACES & ~ns.CLONE_NEWPID)
        _init_main(w, hostname, tmp_source, keep, rootfs, mask, mountpoint)
    except BaseException as exc:
        os.write(w, f"error {exc}\n".encode())
    finally:
        os._exit(1)


def _reap_failed(pid: int) -> None:
    """An init that did not come up: make sure it is gone, and reaped."""
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


def _read_report(fd: int) -> str:
    chunks = []
    deadline = time.monotonic() + READY_TIMEOUT
    with os.fdopen(fd, "rb") as f:
        while time.monotonic() < deadline:
            data = f.read1(4096) if hasattr(f, "read1") else f.read(4096)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks).decode(errors="replace")


def _init_main(
    report_fd: int, hostname: str, tmp_source: str, keep: list[str], rootfs: bool, mask: list[str],
    mountpoint: str,
) -> None:
    """PID 1 of the pod (never returns)."""
    from corral.runtime.launcher import set_cmdline

    set_cmdline(["corral-pod-init", os.path.dirname(tmp_source)])
    try:
        pod_dir = os.open(os.path.dirname(tmp_source), os.O_PATH)
        _setup(hostname, tmp_source, keep, rootfs, mask, mountpoint)
        os.write(report_fd, b"ready\n")
    except BaseException as exc:
        os.write(report_fd, f"error {exc}\n".encode())
        os._exit(1)
    os.close(report_fd)
    _detach_fds(keep_fd=pod_dir)
    os._exit(_reap_forever(pod_dir))


def _setup(hostname: str, tmp_source: str, keep: list[str], rootfs: bool, mask: list[str],
           mountpoint: str) -> None:
    ns.sethostname(hostname)
    ns.mount(None, "/", None, ns.MS_REC | ns.MS_PRIVATE)
    if rootfs:
        from corral.runtime.rootfs import enter_pod_root

        enter_pod_root(Path(tmp_source).parent, tmp_source, keep, mask, mountpoint=Path(mountpoint))
        return
    ns.mount("proc", "/proc", "proc", ns.MS_NOSUID | ns.MS_NODEV | ns.MS_NOEXEC)
    # Paths under /tmp the pod still needs (its commands, working dirs, the
    # agent's data dir with its volumes) are opened before /tmp is covered,
    # then bound back at their places inside the private /tmp.
    held = []
    for path in [tmp_source, *keep]:
        try:
            held.append((path, os.open(path, os.O_PATH)))
        except OSError:
            continue
    src_fd = held[0][1]
    ns.mount(f"/proc/self/fd/{src_fd}", "/tmp", None, ns.MS_BIND)
    for path, fd in held[1:]:
        if os.path.isdir(f"/proc/self/fd/{fd}"):
            os.makedirs(path, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            open(path, "a").close()
        ns.mount(f"/proc/self/fd/{fd}", path, None, ns.MS_BIND | ns.MS_REC)
    for _, fd in held:
        os.close(fd)


def _detach_fds(keep_fd: int) -> None:
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.closerange(3, keep_fd)
    os.closerange(keep_fd + 1, 65536)


def _reap_forever(pod_dir: int) -> int:
    """Reap every child; on a termination signal tell the whole pod and
    leave once it is gone (or after TERM_WAIT, which kills the rest).
    Also leave when the pod's directory is deleted: nothing can find this
    sandbox any more (e.g. a data dir removed without stopping its pods)."""
    watched = {signal.SIGCHLD, *FORWARDED}
    signal.pthread_sigmask(signal.SIG_BLOCK, watched)
    while True:
        info = signal.sigtimedwait(watched, ORPHAN_CHECK)
        _reap()
        if info is None:
            if os.fstat(pod_dir).st_nlink == 0:
                return 0
            continue
        sig = info.si_signo
        if sig == signal.SIGCHLD:
            continue
        _kill_all(sig)
        deadline = time.monotonic() + TERM_WAIT
        while time.monotonic() < deadline and _others_left():
            time.sleep(0.05)
            _reap()
        return 0


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _kill_all(sig: int) -> None:
    try:
        os.kill(-1, sig)  # from PID 1: every other process of the namespace
    except ProcessLookupError:
        pass


def _others_left() -> bool:
    return any(e.isdigit() and e != "1" for e in os.listdir("/proc"))


def sandbox_spec(
    pod: dict[str, Any], data_dir: Path, *, rootfs: bool = False, also: dict[str, Any] | None = None
) -> dict[str, Any]:
    """What the shim needs to make (or find) the pod's sandbox.

    Without a root of its own the pod keeps the agent's data dir in view
    (its volumes are there, found through the environment). With one, the
    volumes are mounted at their mountPath, so the data dir (every pod's
    volumes) is hidden instead, unless the pod's own programs live in it.
    ``also``: the container being started, in case the pod's spec lacks it."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    keep = set() if rootfs else {str(data_dir)}
    used = []
    for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or []), *([also] if also else [])]:
        if c.get("workingDir"):
            keep.add(str(c["workingDir"]))
            used.append(str(c["workingDir"]))
        cmd = c.get("command") or []
        if cmd and str(cmd[0]).startswith("/"):
            # Keep the program's whole install prefix (PREFIX/bin/prog → PREFIX),
            # so a program under /tmp still finds its libraries (a virtualenv's
            # site-packages beside its bin/).
            where = os.path.dirname(str(cmd[0]))
            keep.add(os.path.dirname(where) if os.path.basename(where) == "bin" else where)
            used.append(str(cmd[0]))
    out: dict[str, Any] = {
        "hostname": str(spec.get("hostname") or meta.get("name") or "pod")[:63],
        "keep": sorted(p for p in keep if p.startswith("/tmp/") and os.path.exists(p)),
    }
    if rootfs:
        d = str(data_dir)
        hidden = not d.startswith("/tmp/") and d != "/" and os.path.isdir(d)
        if hidden and not any(u == d or u.startswith(d + "/") for u in used):
            out["mask"] = [d]
        out["rootfs"] = True
    return out
