"""Containers as host processes: the zero-setup runtime of a one-machine cluster.

Each container instance is a directory under ``state_dir/run/containers/<id>``
(also reachable as ``state_dir/containers``) and a supervisor process (:mod:`corral.runtime.shim`) that owns the actual
command. This object keeps no state of its own beyond what it can re-read
from those directories, so a fresh ``ProcessRuntime`` over the same state
dir sees (adopts) every container an earlier one started.

It does not run images: a container is ``command`` + ``args`` on the host,
with the host's network and file system.

``state_dir/run`` is a tmpfs when the node asks for it (``memory=True``, as
the agent's :func:`corral.agent.runtimes.build_runtimes` does): the
containers' small files and each pod's lock and ``sandbox.json`` are
written there, not to the root file system (:mod:`corral.runtime.memfs`).
What a pod writes (its /tmp, its root's upper layer: ``state_dir/pods/<uid>``)
and the logs stay on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import secrets
import shutil
import signal
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from corral.runtime import cgroups, memfs, namespaces, rootfs
from corral.runtime.cgroups import Cgroup
from corral.runtime.init import sandbox_pid, sandbox_spec
from corral.runtime.launcher import CMDLINE_ROOM
from corral.runtime.launcher import address as launcher_address
from corral.runtime.layout import containers_dir, link_old_layout, pod_states_dir, run_dir
from corral.runtime.limits import ContainerLimits, LimitError
from corral.runtime.protocol import (
    ContainerHandle,
    ContainerState,
    ContainerStats,
    ExecPlan,
    LogPaths,
    Mount,
    StartError,
)
from corral.runtime.shim import proc_start_ticks

log = logging.getLogger(__name__)

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
NO_COMMAND = "the process runtime runs command, not images: set command"
START_TIMEOUT = 20.0
POLL = 0.05
PRUNE_EVERY = 60.0
STARTED_CACHE_MAX = 4096


class ProcessRuntime:
    handler = "process"

    def __init__(self, state_dir: Path, *, isolate: bool = True, memory: bool = False) -> None:
        """``isolate=False`` runs plain processes even as root (a choice for
        a node that must not use namespaces or cgroups). ``memory``: keep
        the small state in a tmpfs (mounted here, or found from an earlier
        agent); :meth:`close` unmounts it once no container or pod is left."""
        self.state_dir = Path(state_dir)
        self.memory = memfs.MemoryDir(run_dir(self.state_dir), mode=0o700, wanted=memory)
        self.memory.open()
        self._root = containers_dir(self.state_dir)
        self._pod_state = pod_states_dir(self.state_dir)
        self._pods = self.state_dir / "pods"
        self._root.mkdir(parents=True, exist_ok=True)
        self._pod_state.mkdir(exist_ok=True)
        link_old_layout(self.state_dir, self._root)
        self._shims: set[asyncio.Task[None]] = set()
        self._launcher: asyncio.subprocess.Process | None = None
        self._launcher_lock = asyncio.Lock()
        self._launcher_name = launcher_address(self.state_dir)  # resolve() + a hash: once, not per start
        self._pruned_at = float("-inf")
        self._started_cache: dict[str, tuple[dict[str, Any], datetime | None]] = {}
        self.pod_network: Any = None
        """A net.podnet.PodNetwork when pods get network namespaces (set by the agent)."""
        why_not = namespaces.supported() if isolate else "disabled"
        self.namespaces = why_not is None
        self.cgroup_version = cgroups.detect() if isolate else None
        self.rootfs_missing = rootfs.supported(self.state_dir) if self.namespaces else why_not
        """Why pods here get no root of their own (volumes then by env), or None."""
        parts = []
        if self.namespaces:
            parts.append("namespaces=pid,mount,uts,ipc")
            parts.append("rootfs=overlay" if self.rootfs_missing is None else "rootfs=host")
        if self.cgroup_version is not None:
            parts.append(f"cgroup=v{self.cgroup_version}")
        self.isolation = ",".join(parts) if parts else f"none ({why_not}): plain host processes"
        """Said on the Node (annotation) so users know what limits hold here."""

    # -- start ---------------------------------------------------------------

    async def start_container(
        self,
        pod: dict[str, Any],
        container: dict[str, Any],
        logs: LogPaths,
        env: dict[str, str],
        *,
        attempt: int = 0,
        init: bool = False,
        mounts: Sequence[Mount] = (),
    ) -> ContainerHandle:
        meta = pod.get("metadata") or {}
        argv, cwd, full_env = _prepare(container, env)
        cid = secrets.token_hex(16)
        self._check_user(pod, container)
        net = await self._pod_net(pod)
        handle = ContainerHandle(
            id=cid,
            pod_uid=str(meta.get("uid", "")),
            pod_namespace=str(meta.get("namespace", "")),
            pod_name=str(meta.get("name", "")),
            container_name=str(container.get("name", "")),
            attempt=attempt,
            log_path=logs.path,
            init=init,
        )
        cdir = self._root / cid
        spec = {
            "argv": argv,
            "env": full_env,
            "cwd": cwd,
            "log_path": str(logs.path),
            "log_max_bytes": logs.max_bytes,
            **self._isolation_spec(pod, container, cid),
        }
        if mounts and self.rootfs_missing is None:
            spec["mounts"] = [{"source": str(m.host_path), "target": m.container_path,
                               "readOnly": m.read_only} for m in mounts]
        if net is not None:
            spec["sandbox"]["netns"] = net.netns
            if self.rootfs_missing is None:
                spec.setdefault("mounts", []).append(
                    {"source": str(net.resolv_conf), "target": "/etc/resolv.conf", "readOnly": True})
        # Off the event loop: under a burst and a busy disk these small
        # writes stalled every other pod's sync (7 % of corral up's loop).
        await asyncio.to_thread(_lay_out, cdir, logs, spec, handle)
        laid_out = time.monotonic()
        report = await self._spawn_shim(cdir)
        if "error" in report:
            shutil.rmtree(cdir, ignore_errors=True)
            raise StartError("RunContainerError", str(report.get("message", "start failed")))
        steps = report.get("steps")
        return dataclasses.replace(
            handle, start_steps={"laid_out": laid_out, **(steps if isinstance(steps, dict) else {})})

    async def _pod_net(self, pod: dict[str, Any]) -> Any:
        """The pod's network namespace (net/podnet.py) when it gets one."""
        from corral.net.podnet import wants_own_network

        if self.pod_network is None or not self.namespaces or not wants_own_network(pod):
            return None
        return await self.pod_network.ensure_netns(pod)

    def _isolation_spec(
        self, pod: dict[str, Any], container: dict[str, Any], cid: str
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        uid = str((pod.get("metadata") or {}).get("uid", "")) or "no-uid"
        if self.namespaces:
            sandbox = sandbox_spec(pod, self.state_dir.parent, rootfs=self.rootfs_missing is None,
                                   also=container)
            out["sandbox"] = {"dir": str(self._pods / uid), "state": str(self._pod_state / uid), **sandbox}
        if self.cgroup_version is not None:
            try:
                limits = ContainerLimits.from_container(container, pod)
            except LimitError as exc:
                raise StartError("CreateContainerConfigError", str(exc)) from exc
            out["cgroup"] = {
                "version": self.cgroup_version,
                "name": f"{uid}/{cid}",
                "limits": dataclasses.asdict(limits),
            }
        user = run_as(pod, container)
        if user is not None:
            out["user"] = user
        return out

    def _check_user(self, pod: dict[str, Any], container: dict[str, Any]) -> None:
        user = run_as(pod, container)
        if user is None or os.geteuid() == 0:
            return
        if user.get("uid") not in (None, os.geteuid()) or user.get("gid") not in (None, os.getegid()):
            raise StartError(
                "CreateContainerConfigError",
                f"securityContext.runAsUser/runAsGroup {user}: this node's process runtime "
                f"runs as uid {os.geteuid()} and cannot switch users without root",
            )

    async def exec_plan(
        self, handle: ContainerHandle, command: list[str], *, tty: bool
    ) -> ExecPlan | None:
        """Into the container's pod namespaces with nsenter, as its user,
        in its working directory and environment; None without isolation
        (the agent then runs the command on the host)."""
        cdir = self._root / handle.id
        spec, started = _read_json(cdir / "spec.json"), _read_json(cdir / "started.json")
        nsenter = shutil.which("nsenter")
        if not (self.namespaces and spec and started and nsenter and "sandbox" in spec):
            return None
        pid = started.get("pid")
        if not _alive(pid, started.get("startTicks")) or not command:
            return None
        if not _found_in(pid, command[0], spec["env"].get("PATH", DEFAULT_PATH), spec["cwd"]):
            # The agent's host fallback then reports the missing executable
            # as Kubernetes words it ("executable file not found in $PATH").
            return None
        # In a root of the pod's own, a path given to --wd would be opened on
        # the host before nsenter enters; the container's own cwd is its workingDir.
        wd = "--wd" if "mounts" in spec or spec["sandbox"].get("rootfs") else f"--wd={spec['cwd']}"
        argv = [nsenter, "-t", str(pid), "-p", "-m", "-u", "-i", wd]
        if spec["sandbox"].get("netns"):
            argv.insert(3, "-n")
        user = spec.get("user") or {}
        if user.get("gid") is not None:
            argv.append(f"--setgid={int(user['gid'])}")
        if user.get("uid") is not None:
            argv.append(f"--setuid={int(user['uid'])}")
        return ExecPlan(argv=[*argv, "--", *command], env=dict(spec["env"]), cwd="/")

    async def stats(self, handle: ContainerHandle) -> ContainerStats | None:
        cgroup = self.cgroup_of(handle)
        if cgroup is None:
            return None
        cpu, mem = cgroup.cpu_usage_ns(), cgroup.memory_bytes()
        if cpu is None or mem is None:
            return None
        return ContainerStats(cpu, mem, datetime.now(UTC))

    def mounts_supported(self, pod: dict[str, Any]) -> bool:
        """Volumes at their mountPath need a root of the pod's own
        (:mod:`corral.runtime.rootfs`); without one the agent tells the
        container where its volumes are through the environment."""
        return self.rootfs_missing is None

    def cgroup_of(self, handle: ContainerHandle) -> Cgroup | None:
        """The container's cgroup (for statistics), if it has one."""
        if self.cgroup_version is None:
            return None
        return Cgroup(self.cgroup_version, f"{handle.pod_uid or 'no-uid'}/{handle.id}")

    async def _spawn_shim(self, cdir: Path) -> dict[str, Any]:
        """Start the container's supervisor: forked by the warm launcher
        (milliseconds), or as a new interpreter if the launcher fails."""
        try:
            report = await self._launch(cdir)
        except (OSError, TimeoutError, ValueError) as exc:
            log.warning("shim launcher unavailable (%s); starting the supervisor directly", exc)
            return await self._spawn_shim_directly(cdir)
        if not report:
            err = (cdir / "shim.log").read_text(errors="replace")[-500:] if (
                cdir / "shim.log").exists() else ""
            return {"error": "StartError", "message": f"the container supervisor failed: {err}"}
        return report

    async def _launch(self, cdir: Path) -> dict[str, Any]:
        name = self._launcher_name
        try:
            reader, writer = await asyncio.open_unix_connection(name)
        except (ConnectionRefusedError, FileNotFoundError):
            await self._start_launcher()
            reader, writer = await asyncio.open_unix_connection(name)
        try:
            writer.write(f"{cdir}\n".encode())
            await writer.drain()
            line = await asyncio.wait_for(reader.readline(), START_TIMEOUT)
        finally:
            writer.close()
        return json.loads(line) if line.strip() else {}

    async def warm_up(self) -> None:
        """Start the launcher now, not when the first pod arrives: its start
        (an interpreter and the supervisor's imports, ~100 ms) was on the
        first pods' path, and in a burst every pod of the first wave waited
        for it. A failure here is only logged: the first start tries again,
        and falls back to a supervisor of its own."""
        try:
            await self._start_launcher()
        except (OSError, TimeoutError) as exc:
            log.warning("starting the shim launcher failed (%s); the first container start retries", exc)

    async def _start_launcher(self) -> None:
        async with self._launcher_lock:
            if self._launcher is not None and self._launcher.returncode is None:
                return
            with open(self.state_dir / "launcher.log", "ab") as errors:
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "corral.runtime.launcher", str(self.state_dir),
                    "." * CMDLINE_ROOM,
                    stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                    stderr=errors, start_new_session=True,
                )
            assert proc.stdout is not None
            first = await asyncio.wait_for(proc.stdout.readline(), START_TIMEOUT)
            if first.strip() == b"ready":
                self._launcher = proc
            else:
                await proc.wait()  # "busy": a launcher of an earlier agent serves us

    async def _spawn_shim_directly(self, cdir: Path) -> dict[str, Any]:
        with open(cdir / "shim.log", "ab") as shim_log:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "corral.runtime.shim",
                str(cdir),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=shim_log,
                start_new_session=True,
            )
        (cdir / "shim.pid").write_text(f"{proc.pid} {proc_start_ticks(proc.pid)}")
        task = asyncio.get_running_loop().create_task(_reap(proc))
        self._shims.add(task)
        task.add_done_callback(self._shims.discard)
        assert proc.stdout is not None
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), START_TIMEOUT)
        except TimeoutError:
            line = b""
        try:
            report = json.loads(line) if line else {}
        except ValueError:
            report = {}
        if not report:
            err = (cdir / "shim.log").read_text(errors="replace")[-500:]
            return {"error": "StartError", "message": f"the container supervisor failed: {err}"}
        return report

    # -- observe -------------------------------------------------------------

    async def container_state(self, handle: ContainerHandle) -> ContainerState:
        return self._state(self._root / handle.id)

    def _started(self, cdir: Path) -> tuple[dict[str, Any] | None, datetime | None]:
        """started.json, parsed once: the shim writes it once, and the agent
        looks at every running container every second."""
        known = self._started_cache.get(cdir.name)
        if known is not None:
            return known
        started = _read_json(cdir / "started.json")
        if started is None:
            return None, None
        known = (started, _parse_time(started.get("startedAt")))
        if len(self._started_cache) >= STARTED_CACHE_MAX:
            self._started_cache.clear()  # only a cache: re-read on the next look
        self._started_cache[cdir.name] = known
        return known

    def _state(self, cdir: Path) -> ContainerState:
        started, started_at = self._started(cdir)
        exit_info = _read_json(cdir / "exit.json")
        if exit_info is not None:
            if "error" in exit_info:
                finished = _parse_time(exit_info.get("finishedAt")) or datetime.now(UTC)
                return ContainerState(
                    "exited",
                    started_at or finished,
                    exit_code=128,
                    finished_at=finished,
                    reason="StartError",
                    message=str(exit_info.get("message", "")),
                )
            return ContainerState(
                "exited",
                started_at or datetime.now(UTC),
                exit_code=int(exit_info.get("exitCode", 0)),
                signal=exit_info.get("signal"),
                finished_at=_parse_time(exit_info.get("finishedAt")),
                reason=exit_info.get("reason"),
            )
        if started and _alive(started.get("pid"), started.get("startTicks")):
            return ContainerState("running", started_at or datetime.now(UTC))
        if _shim_alive(cdir):
            # Starting, or the container just died and its shim is writing
            # exit.json: either way the shim will settle it shortly.
            return ContainerState("running", started_at or datetime.now(UTC))
        exit_info = _read_json(cdir / "exit.json")  # the shim may have just finished
        if exit_info is not None:
            return self._state(cdir)
        now = datetime.now(UTC)
        return ContainerState(
            "exited",
            started_at or now,
            exit_code=137,
            finished_at=now,
            reason="ContainerStatusUnknown",
            message="the container's supervisor is gone and its exit status was lost",
        )

    async def list(self) -> list[ContainerHandle]:
        now = time.monotonic()
        if self.cgroup_version is not None and now - self._pruned_at > PRUNE_EVERY:
            self._pruned_at = now
            await asyncio.to_thread(cgroups.prune_empty, self.cgroup_version)
        handles = []
        for cdir in sorted(self._root.iterdir()) if self._root.exists() else []:
            meta = _read_json(cdir / "meta.json")
            if meta is None:
                continue
            try:
                handles.append(_handle_from_meta(meta))
            except (KeyError, TypeError, ValueError):
                log.warning("ignoring unreadable container state in %s", cdir)
        return handles

    # -- stop ----------------------------------------------------------------

    async def stop_container(self, handle: ContainerHandle, grace_seconds: float) -> None:
        cdir = self._root / handle.id
        if not cdir.exists() or self._state(cdir).status == "exited":
            return
        if grace_seconds > 0:
            self._signal(cdir, signal.SIGTERM)
            if await self._wait_exited(cdir, grace_seconds):
                return
        self._signal(cdir, signal.SIGKILL)
        if not await self._wait_exited(cdir, 10.0):
            log.warning("container %s did not exit after SIGKILL", handle.id)

    def _signal(self, cdir: Path, sig: signal.Signals) -> None:
        started = _read_json(cdir / "started.json")
        if not started or not _alive(started.get("pid"), started.get("startTicks")):
            return
        try:
            os.killpg(int(started["pid"]), sig)
        except (ProcessLookupError, PermissionError):
            pass

    async def _wait_exited(self, cdir: Path, timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if self._state(cdir).status == "exited":
                return True
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(min(POLL, max(0.0, deadline - loop.time())))

    async def remove_container(self, handle: ContainerHandle) -> None:
        cdir = self._root / handle.id
        if not cdir.exists():
            return
        await self.stop_container(handle, 0)
        cgroup = self.cgroup_of(handle)
        if cgroup is not None:
            await asyncio.to_thread(cgroup.remove)
        shutil.rmtree(cdir, ignore_errors=True)
        self._started_cache.pop(handle.id, None)
        if not any(h.pod_uid == handle.pod_uid for h in await self.list()):
            # The pod's last container: its sandbox goes too, as a container's
            # writable layer does on a restart (a new one costs a fork).
            await self.remove_pod(handle.pod_uid)

    async def remove_pod(self, pod_uid: str) -> None:
        """Kill the pod's init (the kernel then kills whatever is left in
        its PID namespace) and drop its private /tmp."""
        pod_dir = self._pods / (pod_uid or "no-uid")
        state = self._pod_state / (pod_uid or "no-uid")
        if not pod_dir.exists() and not state.exists():
            return
        for where in (state, pod_dir):  # pod_dir: a sandbox from before the state moved
            pid = sandbox_pid(where)
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        shutil.rmtree(state, ignore_errors=True)
        shutil.rmtree(pod_dir, ignore_errors=True)
        if self.cgroup_version is not None:
            for d in Cgroup(self.cgroup_version, pod_uid or "no-uid").dirs:
                with contextlib.suppress(OSError):
                    d.rmdir()

    def version(self) -> str:
        return "process://corral"

    async def close(self) -> None:
        """Wait for the shims this object spawned to be reaped; containers
        keep running (the agent is crash-only and re-adopts them)."""
        for task in list(self._shims):
            task.cancel()
        if self._launcher is not None and self._launcher.returncode is None:
            self._launcher.terminate()
            await self._launcher.wait()
        self._launcher = None
        if self.memory.close():
            log.info("no container left: unmounted the runtime's state tmpfs %s", self.memory.path)


async def _reap(proc: asyncio.subprocess.Process) -> None:
    await proc.wait()


def _prepare(
    container: dict[str, Any], env: dict[str, str]
) -> tuple[list[str], str, dict[str, str]]:
    """Validate what the host can check before anything is spawned, so the
    common mistakes become a clear waiting reason instead of a dead shim."""
    command = container.get("command") or []
    args = container.get("args") or []
    if not command:
        raise StartError("CreateContainerConfigError", NO_COMMAND)
    argv = [str(a) for a in [*command, *args]]
    full_env = {"PATH": DEFAULT_PATH, **env}
    for key, value in full_env.items():
        if not key or "=" in key or "\0" in key or "\0" in value:
            raise StartError("CreateContainerConfigError", f"env: invalid variable {key!r}")
    if any("\0" in a for a in argv):
        raise StartError("CreateContainerConfigError", "command/args: contains a NUL byte")
    cwd = str(container.get("workingDir") or "/")
    if not os.path.isabs(cwd):
        raise StartError(
            "CreateContainerConfigError", f"workingDir {cwd!r} is not an absolute path"
        )
    if not os.path.isdir(cwd):
        raise StartError(
            "RunContainerError", f"workingDir {cwd!r} does not exist or is not a directory"
        )
    exe = argv[0]
    if "/" in exe:
        path = exe if os.path.isabs(exe) else os.path.join(cwd, exe)
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            raise StartError("RunContainerError", f'exec: "{exe}": no such executable file')
    elif shutil.which(exe, path=full_env["PATH"]) is None:
        raise StartError("RunContainerError", f'exec: "{exe}": executable file not found in $PATH')
    return argv, cwd, full_env


def _found_in(pid: int, exe: str, path: str, cwd: str) -> bool:
    """Is ``exe`` an executable as the container sees its files?"""
    root = f"/proc/{pid}/root"
    if "/" in exe:
        full = exe if os.path.isabs(exe) else os.path.join(cwd, exe)
        return os.access(root + full, os.X_OK) and os.path.isfile(root + full)
    dirs = os.pathsep.join(root + d for d in path.split(os.pathsep) if d.startswith("/"))
    return shutil.which(exe, path=dirs) is not None


def run_as(pod: dict[str, Any], container: dict[str, Any]) -> dict[str, int] | None:
    """securityContext.runAsUser/runAsGroup, the container's over the pod's."""
    pod_sc = (pod.get("spec") or {}).get("securityContext") or {}
    sc = container.get("securityContext") or {}
    uid = sc.get("runAsUser", pod_sc.get("runAsUser"))
    gid = sc.get("runAsGroup", pod_sc.get("runAsGroup"))
    if uid is None and gid is None:
        return None
    return {"uid": uid, "gid": gid}


def _alive(pid: Any, ticks: Any) -> bool:
    """Is the recorded process still that same process (not a reused pid,
    not a zombie)? One read of /proc/PID/stat: the agent asks this of every
    running container every second."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return False
    # The command name (field 2) may contain spaces and parentheses.
    fields = raw[raw.rindex(b")") + 2 :].split()
    if ticks is not None and int(fields[19]) != ticks:
        return False
    return fields[0] not in (b"Z", b"X")


def _shim_alive(cdir: Path) -> bool:
    try:
        pid_s, ticks_s = (cdir / "shim.pid").read_text().split()
    except (OSError, ValueError):
        return False
    return _alive(int(pid_s), None if ticks_s == "None" else int(ticks_s))


def _lay_out(cdir: Path, logs: LogPaths, spec: dict[str, Any], handle: ContainerHandle) -> None:
    """The container's directory as its supervisor reads it."""
    cdir.mkdir(parents=True)
    logs.path.parent.mkdir(parents=True, exist_ok=True)
    (cdir / "spec.json").write_text(json.dumps(spec))
    _write_meta(cdir, handle)


def _write_meta(cdir: Path, handle: ContainerHandle) -> None:
    meta = {
        "id": handle.id,
        "pod_uid": handle.pod_uid,
        "pod_namespace": handle.pod_namespace,
        "pod_name": handle.pod_name,
        "container_name": handle.container_name,
        "attempt": handle.attempt,
        "log_path": str(handle.log_path),
        "init": handle.init,
    }
    (cdir / "meta.json").write_text(json.dumps(meta))


def _handle_from_meta(meta: dict[str, Any]) -> ContainerHandle:
    return ContainerHandle(
        id=str(meta["id"]),
        pod_uid=str(meta["pod_uid"]),
        pod_namespace=str(meta["pod_namespace"]),
        pod_name=str(meta["pod_name"]),
        container_name=str(meta["container_name"]),
        attempt=int(meta["attempt"]),
        log_path=Path(meta["log_path"]),
        init=bool(meta.get("init", False)),
    )


def _read_json(path: Path) -> dict[str, Any] | None:
    # open() rather than Path.read_text(): the agent looks for each running
    # container's exit.json on every poll, and pathlib's layers doubled it.
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _parse_time(text: Any) -> datetime | None:
    """Parse the shim's nanosecond RFC 3339 (Python keeps microseconds)."""
    if not isinstance(text, str) or len(text) < 20:
        return None
    base, _, frac = text.rstrip("Z").partition(".")
    try:
        moment = datetime.strptime(base, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return None
    return moment.replace(microsecond=int((frac + "000000")[:6])) if frac else moment
