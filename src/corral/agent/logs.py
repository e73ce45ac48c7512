"""Container log files: where they live, how long they are kept, how they are read.

Layout follows the kubelet's ``/var/log/pods``: one directory per pod
(``NS_NAME_UID``), one per container, one file per instance named after its
restart count (``3.log``, rotated to ``3.log.1`` by the writer). Only the
current and the previous instance of a container are kept, which is what
``kubectl logs`` and ``kubectl logs --previous`` can ask for.

Files are in the CRI format the runtime's supervisor writes:
``<RFC3339Nano> <stdout|stderr> <F|P> <text>``; P marks a piece of a longer
line, to be joined with what follows up to the next F.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from corral.runtime.protocol import LogPaths

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
FOLLOW_POLL = 0.1


class LogStore:
    def __init__(self, root: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.root.mkdir(parents=True, exist_ok=True)

    def pod_dir(self, namespace: str, name: str, uid: str) -> Path:
        return Path(self._pod_dir(namespace, name, uid))

    def _pod_dir(self, namespace: str, name: str, uid: str) -> str:
        return f"{self.root}/{namespace}_{name}_{uid}"

    def paths(self, namespace: str, name: str, uid: str, container: str, attempt: int) -> LogPaths:
        # One parse of one string, not three pathlib joins: every container start asks.
        path = Path(f"{self._pod_dir(namespace, name, uid)}/{container}/{attempt}.log")
        return LogPaths(path, self.max_bytes)

    def attempts(self, namespace: str, name: str, uid: str, container: str) -> list[int]:
        cdir = self.pod_dir(namespace, name, uid) / container
        found = []
        for entry in cdir.glob("*.log") if cdir.exists() else []:
            stem = entry.name[: -len(".log")]
            if stem.isdigit():
                found.append(int(stem))
        return sorted(found)

    def prune(self, namespace: str, name: str, uid: str, container: str, keep: int = 2,
              newest: int | None = None) -> None:
        """Drop all but the newest ``keep`` instances' logs. ``newest``: the
        attempt just started (attempts count up from 0, so below ``keep``
        there is nothing to drop, and no directory listing per first start)."""
        if newest is not None and newest < keep:
            return
        for attempt in self.attempts(namespace, name, uid, container)[:-keep]:
            paths = self.paths(namespace, name, uid, container, attempt)
            for path in (paths.path, paths.rotated):
                path.unlink(missing_ok=True)

    def remove_pod(self, namespace: str, name: str, uid: str) -> None:
        shutil.rmtree(self.pod_dir(namespace, name, uid), ignore_errors=True)

    def remove_pods_except(self, keep_uids: Iterable[str]) -> None:
        keep = set(keep_uids)
        for entry in self.root.iterdir():
            if entry.is_dir() and entry.name.rsplit("_", 1)[-1] not in keep:
                shutil.rmtree(entry, ignore_errors=True)


@dataclass(frozen=True)
class LogOptions:
    follow: bool = False
    previous: bool = False
    timestamps: bool = False
    tail_lines: int | None = None
    limit_bytes: int | None = None
    since_seconds: int | None = None
    since_time: datetime | None = None

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> LogOptions:
        """Parse ``pods/log`` query parameters; ValueError names the field."""
        since_time = None
        if query.get("sinceTime"):
            text = query["sinceTime"].replace("Z", "+00:00")
            try:
                since_time = datetime.fromisoformat(text)
            except ValueError:
                raise ValueError(
                    f"sinceTime: {query['sinceTime']!r} is not an RFC 3339 time"
                ) from None
        opts = cls(
            follow=_bool(query, "follow"),
            previous=_bool(query, "previous"),
            timestamps=_bool(query, "timestamps"),
            tail_lines=_int(query, "tailLines", minimum=0),
            limit_bytes=_int(query, "limitBytes", minimum=1),
            since_seconds=_int(query, "sinceSeconds", minimum=1),
            since_time=since_time,
        )
        if opts.since_seconds is not None and opts.since_time is not None:
            raise ValueError("sinceSeconds: at most one of sinceTime or sinceSeconds may be set")
        return opts

    def since(self, now: datetime) -> datetime | None:
        if self.since_seconds is not None:
            return now - timedelta(seconds=self.since_seconds)
        return self.since_time


def _bool(query: Mapping[str, str], name: str) -> bool:
    value = query.get(name, "false").lower()
    if value in ("true", "1"):
        return True
    if value in ("false", "0", ""):
        return False
    raise ValueError(f"{name}: {query[name]!r} is not a boolean")


def _int(query: Mapping[str, str], name: str, *, minimum: int) -> int | None:
    if name not in query or query[name] == "":
        return None
    try:
        value = int(query[name])
    except ValueError:
        raise ValueError(f"{name}: {query[name]!r} is not an integer") from None
    if value < minimum:
        raise ValueError(f"{name}: must be greater than or equal to {minimum}")
    return value


@dataclass(frozen=True)
class LogLine:
    timestamp: str
    stream: str
    text: bytes

    def when(self) -> datetime | None:
        base, _, frac = self.timestamp.rstrip("Z").partition(".")
        try:
            moment = datetime.strptime(base, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
        except ValueError:
            return None
        return moment.replace(microsecond=int((frac + "000000")[:6])) if frac else moment

    def render(self, timestamps: bool) -> bytes:
        if timestamps:
            return self.timestamp.encode() + b" " + self.text + b"\n"
        return self.text + b"\n"


class _Parser:
    """Bytes in, whole log lines out; keeps an incomplete record and the
    pieces of a partial (P) line between calls."""

    def __init__(self) -> None:
        self._rest = b""
        self._pieces: list[bytes] = []
        self._first_ts = ""

    def feed(self, data: bytes) -> list[LogLine]:
        self._rest += data
        *records, self._rest = self._rest.split(b"\n")
        out = []
        for rec in records:
            parts = rec.split(b" ", 3)
            if len(parts) < 4:
                continue  # not a CRI record; a torn write or foreign data
            ts, stream, tag, text = parts
            if not self._pieces:
                self._first_ts = ts.decode(errors="replace")
            self._pieces.append(text)
            if tag != b"P":
                out.append(LogLine(self._first_ts, stream.decode(), b"".join(self._pieces)))
                self._pieces = []
        return out


def read_lines(paths: LogPaths) -> tuple[list[LogLine], int, int | None]:
    """All complete lines of an instance (rotated generation first), plus the
    offset and inode of the current file, where following continues."""
    parser = _Parser()
    lines: list[LogLine] = []
    try:
        lines += parser.feed(paths.rotated.read_bytes())
    except FileNotFoundError:
        pass
    try:
        with open(paths.path, "rb") as fh:
            data = fh.read()
            inode = os.fstat(fh.fileno()).st_ino
    except FileNotFoundError:
        return lines, 0, None
    # Stop at the last newline so a record being written is re-read whole.
    end = data.rfind(b"\n") + 1
    lines += parser.feed(data[:end])
    return lines, end, inode


async def stream_log(
    paths: LogPaths,
    opts: LogOptions,
    *,
    now: datetime,
    finished: Callable[[], Awaitable[bool]],
    poll: float = FOLLOW_POLL,
) -> AsyncIterator[bytes]:
    """The bytes of ``kubectl logs`` for one container instance. Following
    ends once ``finished()`` says the instance has exited and all its output
    was sent."""
    since = opts.since(now)
    budget = opts.limit_bytes
    lines, offset, inode = read_lines(paths)
    if since is not None:
        lines = [ln for ln in lines if (ln.when() or now) >= since]
    if opts.tail_lines is not None:
        lines = list(deque(lines, maxlen=opts.tail_lines)) if opts.tail_lines else []
    for line in lines:
        chunk, budget = _spend(line.render(opts.timestamps), budget)
        yield chunk
        if budget == 0:
            return
    if not opts.follow:
        return
    async for line in _follow(paths, offset, inode, finished, poll):
        chunk, budget = _spend(line.render(opts.timestamps), budget)
        yield chunk
        if budget == 0:
            return


def _spend(chunk: bytes, budget: int | None) -> tuple[bytes, int | None]:
    if budget is None:
        return chunk, None
    chunk = chunk[:budget]
    return chunk, budget - len(chunk)


async def _follow(
    paths: LogPaths,
    offset: int,
    inode: int | None,
    finished: Callable[[], Awaitable[bool]],
    poll: float,
) -> AsyncIterator[LogLine]:
    parser = _Parser()
    fh = None
    try:
        while True:
            done = await finished()  # asked before reading, so no output is missed
            if fh is None and paths.path.exists():
                fh = open(paths.path, "rb")  # noqa: SIM115 - held across polls
                if inode is not None and os.fstat(fh.fileno()).st_ino == inode:
                    fh.seek(offset)
            if fh is not None:
                for line in parser.feed(fh.read()):
                    yield line
                if _rotated_away(paths.path, fh):
                    for line in parser.feed(fh.read()):
                        yield line
                    fh.close()
                    fh, inode = None, None
                    continue
            if done:
                return
            await asyncio.sleep(poll)
    finally:
        if fh is not None:
            fh.close()


def _rotated_away(path: Path, fh: object) -> bool:
    try:
        current = path.stat().st_ino
    except FileNotFoundError:
        return False
    return current != os.fstat(fh.fileno()).st_ino  # type: ignore[attr-defined]
