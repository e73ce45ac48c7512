"""The audit log: one JSON line per request, in Kubernetes' audit.k8s.io/v1
Event form, so existing tools can read it.

Levels as in Kubernetes: None (nothing), Metadata (who, what, when, the
answer), Request (plus the request body). Bodies of Secrets, ConfigMaps
and token requests are never written, whatever the level: they would put
credentials in a file that is often shipped elsewhere. The file is rotated
at ``max_bytes`` keeping one older copy, so the log is bounded.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import orjson

from corral.api.uids import new_uid

log = logging.getLogger(__name__)

LEVELS = ("None", "Metadata", "Request")
SENSITIVE = frozenset({"secrets", "configmaps", "tokenreviews", "serviceaccounts/token", "tokenrequests"})


MAX_CACHED_USERS = 4096


class _Stamps:
    """RFC 3339 timestamps with microseconds from ``time.time_ns()``; the
    part up to the second is formatted once per second, not per request."""

    __slots__ = ("second", "prefix")

    def __init__(self) -> None:
        self.second = -1
        self.prefix = ""

    def format(self, ns: int) -> str:
        second, rest = divmod(ns, 1_000_000_000)
        if second != self.second:
            self.prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self.second = second
        return f"{self.prefix}.{rest // 1000:06d}Z"


class AuditLog:
    """Events are buffered and written in batches: one ``write`` system call
    per request, plus the seek that checked the size, was a few per cent of
    an API worker's time. A batch goes out ``FLUSH_SECONDS`` after its first
    event (a loop timer), when it reaches ``FLUSH_BYTES``, and at
    :meth:`close`, so a clean stop loses nothing; a crash may lose the last
    fraction of a second. Outside an event loop every event is written at once."""

    FLUSH_SECONDS = 0.25
    FLUSH_BYTES = 256 * 1024

    def __init__(self, path: Path, level: str = "Metadata", max_bytes: int = 100 * 1024 * 1024) -> None:
        if level not in LEVELS:
            raise ValueError(f"audit level must be one of {', '.join(LEVELS)}, not {level!r}")
        self.path = path
        self.level = level
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._stamps = _Stamps()
        self._users: dict[int, tuple[Any, dict[str, Any]]] = {}
        self._fd = -1
        self._size = 0  # of the file, tracked rather than asked for
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._timer: asyncio.TimerHandle | None = None
        if level != "None":
            path.parent.mkdir(parents=True, exist_ok=True)
            self._open()

    def _open(self) -> None:
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._size = os.fstat(self._fd).st_size

    def close(self) -> None:
        with self._lock:
            self._flush_locked()
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def event(self, *, verb: str, uri: str, user: Any, source_ip: str, user_agent: str, code: int,
              received_ns: int, attrs: Any = None, body: bytes | None = None) -> dict[str, Any] | None:
        """Build the Event for one finished request (None at level None);
        ``received_ns`` is when it arrived, from ``time.time_ns()``."""
        if self.level == "None":
            return None
        stamps = self._stamps
        ev: dict[str, Any] = {
            "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": self.level,
            "auditID": new_uid(), "stage": "ResponseComplete", "requestURI": uri, "verb": verb,
            "user": self._user_info(user),
            "sourceIPs": [source_ip] if source_ip else [], "userAgent": user_agent,
            "responseStatus": {"metadata": {}, "code": code},
            "requestReceivedTimestamp": stamps.format(received_ns), "stageTimestamp": stamps.format(time.time_ns()),
        }
        resource = ""
        if attrs is not None and attrs.resource_request:
            ref = {"resource": attrs.resource, "namespace": attrs.namespace, "name": attrs.name,
                   "apiGroup": attrs.api_group, "apiVersion": attrs.api_version, "subresource": attrs.subresource}
            ev["objectRef"] = {k: v for k, v in ref.items() if v}  # empty parts left out, as Kubernetes does
            resource = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
        sensitive = resource in SENSITIVE or (attrs is not None and attrs.resource in SENSITIVE)
        if self.level == "Request" and body and not sensitive:
            try:
                ev["requestObject"] = orjson.loads(body)
            except orjson.JSONDecodeError:
                pass  # YAML or protobuf bodies are not copied
        elif self.level == "Request" and sensitive:
            ev["level"] = "Metadata"
        return ev

    def _user_info(self, user: Any) -> dict[str, Any]:
        """The event's ``user``: made once per User object (a token's or a
        certificate connection's user is the same object request after
        request) and shared by its events, which are only serialized."""
        cached = self._users.get(id(user))
        if cached is not None and cached[0] is user:
            return cached[1]
        info = {"username": getattr(user, "name", "system:anonymous"),
                "groups": list(getattr(user, "groups", ("system:unauthenticated",)))}
        if len(self._users) >= MAX_CACHED_USERS:
            self._users.clear()
        self._users[id(user)] = (user, info)  # the user is held, so its id is not reused meanwhile
        return info

    def write(self, event: dict[str, Any] | None) -> None:
        if event is None or self._fd < 0:
            return
        line = orjson.dumps(event) + b"\n"
        with self._lock:
            self._pending.append(line)
            self._pending_bytes += len(line)
            if self._pending_bytes >= self.FLUSH_BYTES:
                self._flush_locked()
            elif self._timer is None:
                try:
                    loop = asyncio.get_running_loop()
                except RuntimeError:
                    self._flush_locked()
                else:
                    self._timer = loop.call_later(self.FLUSH_SECONDS, self._flush_on_timer)

    def flush(self) -> None:
        with self._lock:
            self._flush_locked()

    def _flush_on_timer(self) -> None:
        try:
            self.flush()
        except OSError:
            log.exception("audit: could not write events")

    def _flush_locked(self) -> None:
        """Write what is pending; the file is rotated after the line that takes
        it past ``max_bytes``, as when every line was written on its own."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        pending, self._pending, self._pending_bytes = self._pending, [], 0
        if self._fd < 0 or not pending:
            return
        batch: list[bytes] = []
        for line in pending:
            batch.append(line)
            self._size += len(line)
            if self._size > self.max_bytes:
                self._write_all(b"".join(batch))
                batch = []
                self._rotate()
        if batch:
            self._write_all(b"".join(batch))

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]

    def _rotate(self) -> None:
        os.close(self._fd)
        os.replace(self.path, self.path.with_suffix(self.path.suffix + ".1"))
        self._open()
