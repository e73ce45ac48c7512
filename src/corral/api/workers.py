"""API worker processes: more than one core for one API server.

One interpreter runs Python on one core at a time, and an API request is
almost all Python (HTTP parsing, TLS records, authentication, admission,
validation, encoding). ``corral server --api-workers N`` (N > 1) therefore
runs N worker processes beside the server process. All of them listen on
the server's port with SO_REUSEPORT, so the kernel spreads connections over
them. The server process only reserves the port: it stays the only owner of
the store (its revision sequence, write batching and watch history) and the
only one running controllers and the scheduler. Those reach the API over
a worker's Unix socket (each worker serves one beside the port), so serving
their requests is not the server process's work either. Workers reach the
store through :mod:`corral.store.service` over a Unix socket. This is how Kubernetes
scales too, with many API servers over one etcd, but on one machine and
without etcd.

The pool restarts a worker that dies (with backoff), and stops them all
with the server. A worker whose owner dies exits by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

READY_TIMEOUT = 60.0
STOP_GRACE = 5.0
RESTART_BACKOFF = (0.5, 30.0)  # first and longest wait before restarting a dead worker
STABLE_AFTER = 60.0  # seconds a worker must have run for its death not to count as a crash loop


class WorkerStartError(RuntimeError):
    """A worker process did not come up; its output says why."""


class WorkerPool:
    def __init__(self, options: Any, port: int, store_socket: Path, local_sockets: dict[int, Path],
                 owner_socket: Path, *, verbose: bool = False) -> None:
        if options.api_workers < 1:
            raise ValueError(f"api_workers: must be at least 1, got {options.api_workers}")
        if sorted(local_sockets) != list(range(1, options.api_workers + 1)):
            raise ValueError(f"local_sockets: one per worker 1..{options.api_workers}, got {sorted(local_sockets)}")
        self.options = options
        self.port = port
        self.store_socket = store_socket
        self.local_sockets = local_sockets
        """Worker index -> the Unix socket it also serves, for the server
        process's own components (controllers, scheduler, local agent)."""
        self.owner_socket = owner_socket  # the server process's own: workers read its role there
        self.verbose = verbose
        self.processes: dict[int, subprocess.Popen[bytes]] = {}
        self._supervisors: list[asyncio.Task[None]] = []
        self._stopping = False

    @property
    def size(self) -> int:
        return int(self.options.api_workers)

    async def start(self) -> None:
        """Starts every worker and returns once all of them listen; a worker
        that fails to start fails the server's start."""
        try:
            await asyncio.gather(*(self._spawn(index) for index in range(1, self.size + 1)))
        except BaseException:
            await self.stop()
            raise
        self._supervisors = [asyncio.create_task(self._supervise(index), name=f"api-worker-{index}")
                             for index in range(1, self.size + 1)]

    async def stop(self) -> None:
        self._stopping = True
        for task in self._supervisors:
            task.cancel()
        for task in self._supervisors:
            with contextlib.suppress(BaseException):
                await task
        self._supervisors = []
        await asyncio.gather(*(_terminate(process) for process in self.processes.values()))
        self.processes.clear()

    def _command(self, index: int) -> list[str]:
        from corral.api.worker import security_to_json

        opts = self.options
        command = [sys.executable, "-m", "corral.api.worker", "--data-dir", str(opts.data_dir),
                   "--host", opts.host, "--port", str(self.port), "--service-cidr", opts.service_cidr,
                   "--store-socket", str(self.store_socket), "--index", str(index),
                   "--local-socket", str(self.local_sockets[index]), "--owner-socket", str(self.owner_socket),
                   "--security", security_to_json(opts.security)]
        return [*command, "-v"] if self.verbose else command

    async def _spawn(self, index: int) -> None:
        # subprocess.Popen, not the event loop's subprocess support: CPython
        # starts the child with vfork, which runs no pthread_atfork handlers.
        # uvloop's (libuv's) fork runs them, and gRPC's (the etcd client's)
        # abort the child while gRPC threads are busy ("Check failed:
        # next_worker->state == KICKED").
        process = subprocess.Popen(self._command(index), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
        self.processes[index] = process
        try:
            line = await _first_line(process, READY_TIMEOUT)
        except TimeoutError:
            line = b""
        if not line.startswith(b"ready "):
            await _terminate(process)
            raise WorkerStartError(f"API worker {index} did not start (exit status {process.returncode}); "
                                   "its log is on the server's stderr")
        log.info("API worker %d (pid %d) serves port %d", index, process.pid, self.port)

    async def _supervise(self, index: int) -> None:
        """Restarts worker ``index`` whenever it exits; the wait before a
        restart doubles while workers keep dying young (a crash loop), and is
        short again for one that ran a while."""
        delay = RESTART_BACKOFF[0]
        while not self._stopping:
            process = self.processes[index]
            started = time.monotonic()
            code = await _exited(process)
            if self._stopping:
                return
            if time.monotonic() - started >= STABLE_AFTER:
                delay = RESTART_BACKOFF[0]
            log.warning("API worker %d (pid %d) exited with status %s; restarting in %.1f s",
                        index, process.pid, code, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RESTART_BACKOFF[1])
            try:
                await self._spawn(index)
            except (OSError, WorkerStartError) as exc:
                log.error("API worker %d: %s", index, exc)

async def _first_line(process: subprocess.Popen[bytes], timeout: float) -> bytes:
    """The child's first line of output (b"" if it closes its output first),
    read on the loop; its pipe is closed after."""
    assert process.stdout is not None
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), process.stdout)
    try:
        return await asyncio.wait_for(reader.readline(), timeout)
    finally:
        transport.close()


async def _exited(process: subprocess.Popen[bytes]) -> int:
    """Waits for ``process`` on the loop (a pidfd becomes readable when it
    exits), reaps it and returns its status; no thread blocks in wait()."""
    if process.poll() is not None:
        return int(process.returncode)
    loop = asyncio.get_running_loop()
    try:
        fd = os.pidfd_open(process.pid)
    except ProcessLookupError:
        return int(process.wait())
    gone: asyncio.Future[None] = loop.create_future()
    loop.add_reader(fd, lambda: gone.done() or gone.set_result(None))
    try:
        await gone
    finally:
        loop.remove_reader(fd)
        os.close(fd)
    return int(process.wait())


async def _terminate(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(_exited(process), STOP_GRACE)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await _exited(process)
