"""Random version-4 UUIDs for object uids and audit IDs, drawn from the OS
random source a few kilobytes at a time.

``uuid.uuid4()`` makes one ``getrandom`` system call per UUID; on the API
server's event loop each such call releases the GIL and has to win it back
from the store's writer thread, which costs far more than the call. The
bytes are the same kernel CSPRNG's, so uids stay unpredictable and unique.
"""

from __future__ import annotations

import os
import threading

_BATCH = 256  # UUIDs per system call


class _Pool:
    """Random bytes as hex text, 256 UUIDs' worth per system call; each UUID
    is cut from it with its version and variant digits set."""

    __slots__ = ("_hex", "_pos", "_lock")

    def __init__(self) -> None:
        self._hex = ""
        self._pos = 0
        self._lock = threading.Lock()

    def take32(self) -> str:
        with self._lock:
            at = self._pos
            if at >= len(self._hex):
                self._hex, at = os.urandom(16 * _BATCH).hex(), 0
            self._pos = at + 32
            return self._hex[at:at + 32]


# The variant digit (RFC 4122: binary 10xx) for each random hex digit.
_VARIANT = {d: "89ab"[int(d, 16) & 3] for d in "0123456789abcdef"}


_pool = _Pool()


def _reseed_after_fork() -> None:
    global _pool
    _pool = _Pool()  # a forked child must not hand out its parent's next uids


os.register_at_fork(after_in_child=_reseed_after_fork)


def new_uid() -> str:
    """A random (version 4, RFC 4122 variant) UUID in its canonical text form."""
    h = _pool.take32()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"
