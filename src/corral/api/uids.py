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
    __slots__ = ("_buf", "_pos", "_lock")

    def __init__(self) -> None:
        self._buf = b""
        self._pos = 0
        self._lock = threading.Lock()

    def take16(self) -> bytes:
        with self._lock:
            if self._pos >= len(self._buf):
                self._buf, self._pos = os.urandom(16 * _BATCH), 0
            at = self._pos
            self._pos = at + 16
            return self._buf[at:at + 16]


_pool = _Pool()


def _reseed_after_fork() -> None:
    global _pool
    _pool = _Pool()  # a forked child must not hand out its parent's next uids


os.register_at_fork(after_in_child=_reseed_after_fork)


def new_uid() -> str:
    """A random (version 4, RFC 4122 variant) UUID in its canonical text form."""
    b = bytearray(_pool.take16())
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
