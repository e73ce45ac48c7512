"""Running commands inside a container: ``kubectl exec``, exec probes, hooks.

The runtime says *how* to get into a container (:class:`ExecPlan`: nsenter
into its namespaces, ``docker exec``...); a runtime without a way in gets
the container's own environment and working directory on the host. Either
way the agent spawns a local process and pipes its streams, so probes,
lifecycle hooks and interactive sessions share one path.

Interactive sessions speak the Kubernetes streaming protocol over a
WebSocket (``v5.channel.k8s.io``, or ``v4``): binary frames whose first byte
is the channel (0 stdin, 1 stdout, 2 stderr, 3 status, 4 resize; v5 adds
``255 <channel>`` to close a stream). The API server forwards the frames
untouched between kubectl and this endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import shutil
import signal
import struct
import termios
from dataclasses import dataclass
from typing import Any

from aiohttp import WSMsgType, web

from corral.runtime.protocol import ExecPlan

log = logging.getLogger(__name__)

PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
STDIN, STDOUT, STDERR, STATUS, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MAX_CAPTURE = 64 * 1024


class ExecError(Exception):
    """The command could not be started (the message says why)."""


@dataclass(frozen=True)
class ExecOptions:
    command: list[str]
    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool

    @classmethod
    def from_query(cls, query: Any) -> ExecOptions:
        """From ``?command=..&command=..&stdin=true...`` (kubectl's form);
        raises ValueError naming the parameter."""
        command = list(query.getall("command", []))
        if not command:
            raise ValueError("command: Required value: you must specify at least one command")

        def flag(name: str) -> bool:
            value = str(query.get(name, "false")).lower()
            if value not in ("true", "false", "1", "0"):
                raise ValueError(f"{name}: Invalid value: {value!r}: must be true or false")
            return value in ("true", "1")

        opts = cls(command, flag("stdin"), flag("stdout"), flag("stderr"), flag("tty"))
        if not (opts.stdin or opts.stdout or opts.stderr):
            raise ValueError("you must specify at least one of stdin, stdout, stderr")
        if opts.tty and opts.stderr:
            opts = cls(command, opts.stdin, opts.stdout, False, True)  # a tty merges stderr
        return opts


def host_plan(command: list[str], env: dict[str, str], cwd: str | None) -> ExecPlan:
    """The fallback: the command on the host with the container's env and cwd."""
    full_env = {"PATH": DEFAULT_PATH, **env}
    return ExecPlan(argv=list(command), env=full_env, cwd=cwd or "/")


def _check_executable(plan: ExecPlan) -> None:
    exe = plan.argv[0] if plan.argv else ""
    if not exe:
        raise ExecError("exec: no command given")
    if "/" in exe:
        path = exe if os.path.isabs(exe) else os.path.join(plan.cwd, exe)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return
        raise ExecError(f'exec: "{exe}": stat {exe}: no such file or directory')
    if shutil.which(exe, path=plan.env.get("PATH", DEFAULT_PATH)) is None:
        raise ExecError(f'exec: "{exe}": executable file not found in $PATH')


async def run_captured(plan: ExecPlan, timeout: float) -> tuple[int, str]:
    """Run to completion (probes, hooks): (exit code, combined output).
    A command that outlives ``timeout`` is killed with its process group and
    reported as a failure, as the kubelet reports a timed-out probe."""
    try:
        _check_executable(plan)
    except ExecError as exc:
        return 127, str(exc)
    if not os.path.isdir(plan.cwd):
        return 127, f"chdir {plan.cwd}: no such file or directory"
    proc = await asyncio.create_subprocess_exec(
        *plan.argv,
        env=plan.env,
        cwd=plan.cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        _kill_group(proc.pid)
        await proc.wait()
        return -1, f"command timed out after {timeout:g}s"
    except asyncio.CancelledError:
        _kill_group(proc.pid)
        raise
    _kill_group(proc.pid)  # nothing the command left behind outlives it
    return proc.returncode if proc.returncode is not None else -1, out[:MAX_CAPTURE].decode(
        "utf-8", "replace"
    )


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def exit_status(code: int | None, command: list[str]) -> dict[str, Any]:
    """The Status sent on channel 3, as the kubelet words it."""
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    shown = code if code is not None and code >= 0 else 137
    return {
        "metadata": {},
        "status": "Failure",
        "message": (
            f"command terminated with non-zero exit code: error executing command "
            f"[{' '.join(command)}], exit code {shown}"
        ),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(shown)}]},
    }


def error_status(message: str) -> dict[str, Any]:
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"error executing command in container: {message}",
        "reason": "InternalError",
        "code": 500,
        "details": {"causes": [{"message": message}]},
    }


class _Session:
    """One interactive exec: a child process and a WebSocket."""

    def __init__(self, ws: web.WebSocketResponse, opts: ExecOptions, plan: ExecPlan) -> None:
        self.ws = ws
        self.opts = opts
        self.plan = plan
        self.v5 = ws.ws_protocol == PROTOCOLS[0]
        self.proc: asyncio.subprocess.Process | None = None
        self.master: int | None = None
        self._send_lock = asyncio.Lock()

    async def send(self, channel: int, data: bytes) -> None:
        async with self._send_lock:
            if not self.ws.closed:
                await self.ws.send_bytes(bytes([channel]) + data)

    async def spawn(self) -> None:
        if self.opts.tty:
            master, slave = os.openpty()
            self.master = master
            io: dict[str, Any] = {"stdin": slave, "stdout": slave, "stderr": slave}
        else:
            pipe = asyncio.subprocess.PIPE
            io = {
                "stdin": pipe if self.opts.stdin else asyncio.subprocess.DEVNULL,
                "stdout": pipe if self.opts.stdout else asyncio.subprocess.DEVNULL,
                "stderr": pipe if self.opts.stderr else asyncio.subprocess.DEVNULL,
            }
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *self.plan.argv,
                env=self.plan.env,
                cwd=self.plan.cwd,
                start_new_session=True,
                preexec_fn=_take_tty if self.opts.tty else None,
                **io,
            )
        finally:
            if self.opts.tty:
                os.close(io["stdin"])

    async def run(self) -> int | None:
        assert self.proc is not None
        pumps = [asyncio.ensure_future(self._from_client())]
        outputs = []
        if self.master is not None:
            outputs.append(asyncio.ensure_future(self._pty_out(self.master)))
        else:
            if self.proc.stdout is not None:
                outputs.append(asyncio.ensure_future(self._pipe_out(self.proc.stdout, STDOUT)))
            if self.proc.stderr is not None:
                outputs.append(asyncio.ensure_future(self._pipe_out(self.proc.stderr, STDERR)))
        try:
            code = await self.proc.wait()
            await asyncio.wait(outputs, timeout=2.0)
            return code
        finally:
            for task in [*pumps, *outputs]:
                task.cancel()
            await asyncio.gather(*pumps, *outputs, return_exceptions=True)
            _kill_group(self.proc.pid)
            if self.master is not None:
                os.close(self.master)

    async def _pipe_out(self, stream: asyncio.StreamReader, channel: int) -> None:
        while chunk := await stream.read(32 * 1024):
            await self.send(channel, chunk)

    async def _pty_out(self, master: int) -> None:
        loop = asyncio.get_running_loop()
        os.set_blocking(master, False)
        chunks: asyncio.Queue[bytes] = asyncio.Queue()

        def readable() -> None:
            try:
                chunk = os.read(master, 32 * 1024)
            except BlockingIOError:
                return
            except OSError:  # EIO: every holder of the terminal has gone
                chunk = b""
            if not chunk or chunks.qsize() > 64:  # end, or let the client catch up
                loop.remove_reader(master)
            chunks.put_nowait(chunk)

        loop.add_reader(master, readable)
        try:
            while chunk := await chunks.get():
                await self.send(STDOUT, chunk)
                if chunks.empty():
                    loop.add_reader(master, readable)
        finally:
            loop.remove_reader(master)

    async def _from_client(self) -> None:
        assert self.proc is not None
        async for msg in self.ws:
            if msg.type != WSMsgType.BINARY or not msg.data:
                continue
            channel, data = msg.data[0], msg.data[1:]
            if channel == STDIN:
                await self._write_stdin(data)
            elif channel == RESIZE and self.master is not None:
                _resize(self.master, data)
            elif channel == CLOSE and self.v5 and data[:1] == bytes([STDIN]):
                self._close_stdin()
        self._close_stdin()  # the client went away

    async def _write_stdin(self, data: bytes) -> None:
        assert self.proc is not None
        if self.master is not None:
            with contextlib.suppress(OSError):
                os.write(self.master, data)
        elif self.proc.stdin is not None and not self.proc.stdin.is_closing():
            with contextlib.suppress(ConnectionError, OSError):
                self.proc.stdin.write(data)
                await self.proc.stdin.drain()

    def _close_stdin(self) -> None:
        assert self.proc is not None
        if self.master is not None:
            with contextlib.suppress(OSError):
                os.write(self.master, b"\x04")  # end of input at the terminal
        elif self.proc.stdin is not None and not self.proc.stdin.is_closing():
            self.proc.stdin.close()


def _take_tty() -> None:
    """In the child: make the pty (fd 0) the session's controlling terminal."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _resize(master: int, data: bytes) -> None:
    try:
        size = json.loads(data)
        width, height = int(size.get("Width", 0)), int(size.get("Height", 0))
    except (ValueError, TypeError, AttributeError):
        return
    if 0 < width < 65536 and 0 < height < 65536:
        with contextlib.suppress(OSError):
            fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))


async def serve_exec(request: web.Request, opts: ExecOptions, plan: ExecPlan) -> web.StreamResponse:
    """Upgrade to the streaming protocol, run ``plan``, report its exit."""
    ws = web.WebSocketResponse(protocols=PROTOCOLS, heartbeat=None, max_msg_size=0)
    if not ws.can_prepare(request).ok:
        return web.Response(status=400, text="exec needs a WebSocket upgrade (v5.channel.k8s.io)\n")
    await ws.prepare(request)
    session = _Session(ws, opts, plan)
    try:
        _check_executable(plan)
        if not os.path.isdir(plan.cwd):
            raise ExecError(f"chdir {plan.cwd}: no such file or directory")
        await session.spawn()
    except (ExecError, OSError) as exc:
        message = str(exc)
        await session.send(STATUS, json.dumps(error_status(message)).encode())
        await ws.close()
        return ws
    code = await session.run()
    await session.send(STATUS, json.dumps(exit_status(code, opts.command)).encode())
    await ws.close()
    return ws


def concrete_runtime(runtime: Any, handle: Any) -> Any:
    """The runtime that owns ``handle`` (a RuntimeSet routes by handler)."""
    runtimes = getattr(runtime, "runtimes", None)
    if isinstance(runtimes, dict):
        return runtimes.get(getattr(handle, "runtime", ""), runtime)
    return runtime


async def plan_for(
    runtime: Any,
    handle: Any,
    command: list[str],
    *,
    tty: bool,
    env: dict[str, str],
    cwd: str | None,
) -> ExecPlan:
    """The runtime's way into the container, else the host fallback."""
    exec_plan = getattr(concrete_runtime(runtime, handle), "exec_plan", None)
    if exec_plan is not None:
        plan = await exec_plan(handle, list(command), tty=tty)
        if plan is not None:
            return plan
    return host_plan(command, env, cwd)
