"""WAL checkpoints off the write path.

SQLite's automatic checkpoint runs inside whichever COMMIT pushes the WAL past
its threshold, so one unlucky group commit also copies megabytes into the
main file and fsyncs it: tens of milliseconds of write latency. The writer
connection therefore disables auto-checkpointing, and this thread runs
PASSIVE checkpoints on its own connection; PASSIVE never blocks the writer
or readers, it just copies what it can.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading

log = logging.getLogger(__name__)


class Checkpointer:
    """Checkpoints after writes, at most once per ``interval`` seconds."""

    def __init__(self, path: str, interval: float = 0.25) -> None:
        self._path = path
        self._interval = interval
        self._dirty = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="corral-store-checkpoint",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wrote(self) -> None:
        """Called by the writer after each commit; cheap."""
        self._dirty.set()

    def stop(self) -> None:
        """Blocking: ends the thread after a final checkpoint."""
        self._stopping.set()
        self._dirty.set()
        self._thread.join()

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout = 10000")
            conn.execute("PRAGMA synchronous = FULL")
        except sqlite3.Error:
            log.exception("checkpointer cannot open %s; WAL will only shrink on restart",
                          self._path)
            return
        try:
            while not self._stopping.is_set():
                self._dirty.wait()
                self._dirty.clear()
                self._checkpoint(conn)
                self._stopping.wait(self._interval)
            self._checkpoint(conn)
        finally:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error:
            # A failed checkpoint loses nothing (the WAL still holds every
            # commit); the next write will trigger another attempt.
            log.warning("WAL checkpoint of %s failed", self._path, exc_info=True)
