"""Copies a Docker container's output into the agent's log files.

Why copy instead of reading Docker's own log: ``kubectl logs`` then has one
path for every runtime (the CRI-format files :class:`corral.agent.logs.LogStore`
reads, rotation and ``--previous`` included). The copy is an asyncio task
per container on the agent's loop, reading Docker's multiplexed log stream
over the engine's socket. It is crash-only like the rest of the agent: each
record keeps Docker's timestamp, so a follower started after an agent
restart resumes after the last record in the file, with no loss and no
duplicates.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import aiohttp

from corral.runtime.shim import LogWriter, parse_rfc3339nano

log = logging.getLogger(__name__)

STREAMS = {1: b"stdout", 2: b"stderr"}
TAIL_BYTES = 64 * 1024


def last_timestamp(path: Path) -> int | None:
    """The time of the last record in a CRI log file (its rotated
    generation if the file is empty), in nanoseconds."""
    for candidate in (path, path.with_name(path.name + ".1")):
        try:
            with open(candidate, "rb") as f:
                f.seek(max(0, os.fstat(f.fileno()).st_size - TAIL_BYTES))
                lines = f.read().splitlines()
        except OSError:
            continue
        for line in reversed(lines):
            ts = parse_rfc3339nano(line.split(b" ", 1)[0])
            if ts is not None:
                return ts
    return None


class DockerEndpoint:
    """Where the engine's HTTP API is, for aiohttp (the SDK is blocking)."""

    def __init__(self, base_url: str, api_version: str) -> None:
        self.api_version = api_version
        if base_url.startswith(("unix://", "http+unix://")):
            self.socket: str | None = base_url.split("://", 1)[1]
            self.prefix = f"http://docker/v{api_version}"
        else:
            self.socket = None
            host = base_url.replace("tcp://", "http://", 1)
            self.prefix = f"{host.rstrip('/')}/v{api_version}"

    def session(self, limit: int = 0) -> aiohttp.ClientSession:
        """``limit``: connections at most, 0 for none (a log stream holds
        one for its container's life: aiohttp's default of 100 would stop
        the 101st container's logs)."""
        connector: aiohttp.BaseConnector
        if self.socket is not None:
            connector = aiohttp.UnixConnector(path=self.socket, limit=limit)
        else:
            connector = aiohttp.TCPConnector(limit=limit)
        return aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=None, sock_connect=10)
        )


async def copy_logs(
    session: aiohttp.ClientSession,
    endpoint: DockerEndpoint,
    container_id: str,
    path: Path,
    max_bytes: int,
) -> bool:
    """Copy everything after the file's last record until the container
    stops; returns whether the stream ended normally (container exited)."""
    since = last_timestamp(path)
    params = {"follow": "1", "stdout": "1", "stderr": "1", "timestamps": "1"}
    if since is not None:
        params["since"] = f"{since // 1_000_000_000}.{since % 1_000_000_000:09d}"
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = LogWriter(path, max_bytes)
    try:
        url = f"{endpoint.prefix}/containers/{container_id}/logs"
        async with session.get(url, params=params) as resp:
            if resp.status == 404:
                return True
            resp.raise_for_status()
            while True:
                try:
                    header = await resp.content.readexactly(8)
                except asyncio.IncompleteReadError:
                    return True
                size = int.from_bytes(header[4:8], "big")
                payload = await resp.content.readexactly(size)
                _write(writer, STREAMS.get(header[0], b"stdout"), payload, since)
    finally:
        writer.close()


def _write(writer: LogWriter, stream: bytes, payload: bytes, since: int | None) -> None:
    """One frame is one log message: ``<timestamp> <text>``, with a newline
    unless Docker split a long line (then the piece is partial)."""
    stamp, _, text = payload.partition(b" ")
    ts = parse_rfc3339nano(stamp)
    if ts is not None and since is not None and ts <= since:
        return  # already in the file from before the restart
    partial = not text.endswith(b"\n")
    writer.record(stream, text[:-1] if not partial else text, partial, ts)


class LogFollowers:
    """One copying task per container, restarted when the engine connection
    drops while the container still runs."""

    def __init__(self, endpoint: DockerEndpoint) -> None:
        self.endpoint = endpoint
        self._session: aiohttp.ClientSession | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def follow(self, container_id: str, path: Path, max_bytes: int) -> None:
        task = self._tasks.get(container_id)
        if task is not None and not task.done():
            return
        if self._session is None:
            self._session = self.endpoint.session()
        task = asyncio.get_running_loop().create_task(
            self._run(container_id, path, max_bytes), name=f"docker logs {container_id[:12]}"
        )
        self._tasks[container_id] = task

    def following(self, container_id: str) -> bool:
        task = self._tasks.get(container_id)
        return task is not None and not task.done()

    async def drained(self, container_id: str, timeout: float = 1.0) -> None:
        """Wait (briefly) for an exited container's last lines to land."""
        task = self._tasks.get(container_id)
        if task is not None and not task.done():
            await asyncio.wait({task}, timeout=timeout)

    async def _run(self, container_id: str, path: Path, max_bytes: int) -> None:
        assert self._session is not None
        delay = 0.5
        while True:
            try:
                if await copy_logs(self._session, self.endpoint, container_id, path, max_bytes):
                    return
            except asyncio.CancelledError:
                raise
            except (aiohttp.ClientError, OSError, asyncio.IncompleteReadError) as exc:
                log.info("log stream of %s broke (%s); resuming", container_id[:12], exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    async def stop(self, container_id: str) -> None:
        task = self._tasks.pop(container_id, None)
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def close(self) -> None:
        for cid in list(self._tasks):
            await self.stop(cid)
        if self._session is not None:
            await self._session.close()
            self._session = None
