"""Framing and decoding of a Kubernetes watch stream.

The body is chunked JSON, one event per line, but chunk boundaries are the
transport's business: a line may arrive in many pieces and a chunk may carry
many lines. :class:`LineSplitter` reassembles lines and bounds how much it
will buffer, so a server that never sends a newline cannot exhaust memory.
"""

from __future__ import annotations

from typing import Any

import orjson

from corral.client.errors import ApiError, error_from_status

MAX_LINE = 16 * 1024 * 1024

EVENT_TYPES = frozenset({"ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"})


class WatchDecodeError(ApiError):
    """The stream carried something that is not a watch event."""

    def __init__(self, message: str) -> None:
        super().__init__(0, "WatchDecodeError", message)


class LineSplitter:
    def __init__(self, max_line: int = MAX_LINE) -> None:
        self.max_line = max_line
        self._parts: list[bytes] = []
        self._size = 0

    def feed(self, chunk: bytes) -> list[bytes]:
        """The complete lines ``chunk`` finishes, without their newlines."""
        lines: list[bytes] = []
        start = 0
        while True:
            nl = chunk.find(b"\n", start)
            if nl < 0:
                break
            piece = chunk[start:nl]
            self._check(len(piece))
            if self._parts:
                self._parts.append(piece)
                piece = b"".join(self._parts)
                self._parts.clear()
                self._size = 0
            lines.append(piece)
            start = nl + 1
        rest = chunk[start:]
        if rest:
            self._check(len(rest))
            self._parts.append(rest)
            self._size += len(rest)
        return lines

    def finish(self) -> bytes:
        """What is left after the stream ended: a last line without newline."""
        rest = b"".join(self._parts)
        self._parts.clear()
        self._size = 0
        return rest

    def _check(self, extra: int) -> None:
        if self._size + extra > self.max_line:
            self._parts.clear()
            self._size = 0
            raise WatchDecodeError(f"watch event line longer than {self.max_line} bytes")


def decode_event(line: bytes) -> tuple[str, dict[str, Any]] | None:
    """``(type, object)`` for one line; ``None`` for a blank keep-alive line.

    An ``ERROR`` event is raised as the error its Status names, so a 410
    surfaces as :class:`~corral.client.errors.GoneError` exactly as it would
    from the initial response.
    """
    line = line.strip()
    if not line:
        return None
    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise WatchDecodeError(f"watch event is not JSON: {exc}") from exc
    if not isinstance(event, dict):
        raise WatchDecodeError("watch event is not a JSON object")
    type_ = event.get("type")
    obj = event.get("object")
    if type_ not in EVENT_TYPES:
        raise WatchDecodeError(f"watch event type: unknown value {type_!r}")
    if not isinstance(obj, dict):
        raise WatchDecodeError(f"watch event object: expected an object for {type_}")
    if type_ == "ERROR":
        code = obj.get("code")
        raise error_from_status(code if isinstance(code, int) and code > 0 else 500, obj)
    return type_, obj


def decode_lines(lines: list[bytes]) -> tuple[list[tuple[str, dict[str, Any]]], Exception | None]:
    """The events of ``lines``, and the error that stopped them (an ERROR
    event or a line that is no event): what came before it still counts."""
    events = []
    for line in lines:
        try:
            event = decode_event(line)
        except ApiError as exc:
            return events, exc
        if event is not None:
            events.append(event)
    return events, None
