"""The on-disk model of the SQLite store: an append-only log plus current state.

Every write appends one row to ``log``; its AUTOINCREMENT id *is* the global
revision (kine's idea). A delete appends a tombstone carrying the key's last
value, so a replayed DELETE event can say what was deleted. ``current`` holds
the live value of each key, so get/list at "now" never have to fold the log.
Reading the state at an older revision folds the log: for each key the row
with the greatest id at or below the revision, unless it is a tombstone.

Compaction to revision C keeps, for every key, the newest row at or below C
unless it is a tombstone, and every row above C. That keeps list-at-revision
exact for any revision >= C. It walks the log in bounded id ranges so that a
single step never stalls the writer for long.

These are plain synchronous functions over a ``sqlite3.Connection``; the
threading and batching live in :mod:`corral.store.sqlite`.
"""

from __future__ import annotations

import sqlite3

from corral.store.protocol import (
    ConflictError,
    EventType,
    KeyExistsError,
    KeyNotFoundError,
    KeyValue,
    WatchEvent,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    deleted INTEGER NOT NULL,
    create_revision INTEGER NOT NULL,
    prev_revision INTEGER NOT NULL,
    value BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS log_key_id ON log (key, id);
CREATE TABLE IF NOT EXISTS current (
    key TEXT PRIMARY KEY,
    create_revision INTEGER NOT NULL,
    mod_revision INTEGER NOT NULL,
    value BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""

_COMPACT_KEY = "compact_revision"


def connect(path: str, *, readonly: bool = False) -> sqlite3.Connection:
    """A connection in autocommit mode: transactions are explicit BEGIN/COMMIT."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10.0)
    conn.execute("PRAGMA busy_timeout = 10000")
    if readonly:
        conn.execute("PRAGMA query_only = ON")
    else:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise sqlite3.OperationalError(f"cannot switch {path} to WAL (got {mode})")
        conn.execute("PRAGMA synchronous = FULL")
        # Checkpoints run on their own thread (corral.store.checkpoint), not
        # inside a commit; the WAL file is trimmed back once it has been reused.
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        conn.execute("PRAGMA journal_size_limit = 67108864")
        conn.executescript(SCHEMA)
    return conn


def read_revision(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'log'").fetchone()
    return int(row[0]) if row else 0


def read_compact_revision(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT value FROM meta WHERE name = ?", (_COMPACT_KEY,)).fetchone()
    return int(row[0]) if row else 0


def prefix_end(prefix: str) -> str | None:
    """The smallest string greater than every string starting with ``prefix``
    (None when there is none). SQLite compares TEXT as UTF-8 bytes, which
    orders like Python's code points, so this bounds an index range scan."""
    chars = list(prefix)
    while chars:
        code = ord(chars[-1]) + 1
        if code <= 0x10FFFF:
            if 0xD800 <= code <= 0xDFFF:
                code = 0xE000
            chars[-1] = chr(code)
            return "".join(chars)
        chars.pop()
    return None


def _range(prefix: str, start_after: str, column: str) -> tuple[str, list[str]]:
    if start_after >= prefix:
        clauses, params = [f"{column} > ?"], [start_after]
    else:
        clauses, params = [f"{column} >= ?"], [prefix]
    end = prefix_end(prefix)
    if end is not None:
        clauses.append(f"{column} < ?")
        params.append(end)
    return " AND ".join(clauses), params


def get_current(conn: sqlite3.Connection, key: str) -> KeyValue | None:
    row = conn.execute(
        "SELECT create_revision, mod_revision, value FROM current WHERE key = ?", (key,)
    ).fetchone()
    return KeyValue(key, row[2], row[0], row[1]) if row else None


def list_current(
    conn: sqlite3.Connection, prefix: str, start_after: str, limit: int
) -> tuple[list[KeyValue], bool]:
    where, params = _range(prefix, start_after, "key")
    sql = f"SELECT key, create_revision, mod_revision, value FROM current WHERE {where} ORDER BY key"
    return _fetch_page(conn, sql, params, limit)


def list_at(
    conn: sqlite3.Connection, prefix: str, revision: int, start_after: str, limit: int
) -> tuple[list[KeyValue], bool]:
    where, params = _range(prefix, start_after, "l.key")
    sql = (
        "SELECT l.key, l.create_revision, l.id, l.value FROM log AS l"
        f" WHERE {where} AND l.id <= ? AND l.deleted = 0"
        " AND l.id = (SELECT MAX(n.id) FROM log AS n WHERE n.key = l.key AND n.id <= ?)"
        " ORDER BY l.key"
    )
    return _fetch_page(conn, sql, [*params, revision, revision], limit)


def _fetch_page(
    conn: sqlite3.Connection, sql: str, params: list[object], limit: int
) -> tuple[list[KeyValue], bool]:
    if limit > 0:
        sql += " LIMIT ?"
        params = [*params, limit + 1]
    rows = conn.execute(sql, params).fetchall()
    more = limit > 0 and len(rows) > limit
    if more:
        rows = rows[:limit]
    return [KeyValue(r[0], r[3], r[1], r[2]) for r in rows], more


def count_current(conn: sqlite3.Connection, prefix: str) -> int:
    where, params = _range(prefix, "", "key")
    return int(conn.execute(f"SELECT COUNT(*) FROM current WHERE {where}", params).fetchone()[0])


def events_between(
    conn: sqlite3.Connection, prefix: str, after: int, upto: int, page: int
) -> list[WatchEvent]:
    """Up to ``page`` events under ``prefix`` with after < revision <= upto, oldest first.
    ``prev`` is filled while the previous row is still in the log."""
    end = prefix_end(prefix)
    key_clause = "l.key >= ?" + (" AND l.key < ?" if end is not None else "")
    key_params: list[object] = [prefix] + ([end] if end is not None else [])
    rows = conn.execute(
        "SELECT l.id, l.key, l.deleted, l.create_revision, l.value,"
        " p.id, p.create_revision, p.value"
        " FROM log AS l LEFT JOIN log AS p ON p.id = l.prev_revision"
        f" WHERE l.id > ? AND l.id <= ? AND {key_clause} ORDER BY l.id LIMIT ?",
        [after, upto, *key_params, page],
    ).fetchall()
    events = []
    for rid, key, deleted, create_rev, value, pid, pcreate, pvalue in rows:
        prev = KeyValue(key, pvalue, pcreate, pid) if pid is not None else None
        kind = EventType.DELETE if deleted else EventType.PUT
        events.append(WatchEvent(kind, KeyValue(key, value, create_rev, rid), prev))
    return events


class LogWriter:
    """Applies writes inside the caller's open transaction.

    ``revision`` is the last id handed out; the writer assigns ids itself
    (it is the only writer) so one INSERT per write suffices. The caller
    restores ``revision`` and ``compact_revision`` if the transaction rolls back.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.revision = read_revision(conn)
        self.compact_revision = read_compact_revision(conn)

    def _current(self, key: str) -> KeyValue | None:
        return get_current(self.conn, key)

    def _append(self, key: str, deleted: bool, create_rev: int, prev_rev: int, value: bytes) -> int:
        rev = self.revision + 1
        self.conn.execute(
            "INSERT INTO log (id, key, deleted, create_revision, prev_revision, value)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (rev, key, int(deleted), create_rev or rev, prev_rev, value),
        )
        self.revision = rev
        return rev

    def create(self, key: str, value: bytes) -> WatchEvent:
        # The primary key is the existence check: one statement fewer than
        # looking first. A failed INSERT undoes only itself, not the batch.
        rev = self.revision + 1
        try:
            self.conn.execute(
                "INSERT INTO current (key, create_revision, mod_revision, value) VALUES (?, ?, ?, ?)",
                (key, rev, rev, value),
            )
        except sqlite3.IntegrityError:
            raise KeyExistsError(key) from None
        self._append(key, False, 0, 0, value)
        return WatchEvent(EventType.PUT, KeyValue(key, value, rev, rev))

    def _checked(self, key: str, expected: int) -> KeyValue:
        cur = self._current(key)
        if cur is None:
            raise KeyNotFoundError(key)
        if expected and cur.mod_revision != expected:
            raise ConflictError(key, expected, cur)
        return cur

    def update(self, key: str, value: bytes, expected: int) -> WatchEvent:
        cur = self._checked(key, expected)
        rev = self._append(key, False, cur.create_revision, cur.mod_revision, value)
        self.conn.execute(
            "UPDATE current SET mod_revision = ?, value = ? WHERE key = ?", (rev, value, key)
        )
        return WatchEvent(EventType.PUT, KeyValue(key, value, cur.create_revision, rev), cur)

    def delete(self, key: str, expected: int) -> WatchEvent:
        cur = self._checked(key, expected)
        rev = self._append(key, True, cur.create_revision, cur.mod_revision, cur.value)
        self.conn.execute("DELETE FROM current WHERE key = ?", (key,))
        return WatchEvent(
            EventType.DELETE, KeyValue(key, cur.value, cur.create_revision, rev), cur
        )

    def compact_step(self, target: int, step: int) -> int:
        """Compact towards ``target`` by at most ``step`` revisions; returns the
        revision now compacted to. Rows in (lo, hi] that are tombstones or are
        superseded at or below hi go, and so does the one row per key kept by
        earlier steps that an in-range row now supersedes (its prev_revision)."""
        lo = self.compact_revision
        hi = min(target, lo + step, self.revision)
        if hi <= lo:
            return lo
        doomed = self.conn.execute(
            "SELECT id FROM log AS l WHERE l.id > ? AND l.id <= ? AND (l.deleted = 1 OR EXISTS"
            " (SELECT 1 FROM log AS n WHERE n.key = l.key AND n.id > l.id AND n.id <= ?))"
            " UNION SELECT prev_revision FROM log"
            " WHERE id > ? AND id <= ? AND prev_revision > 0 AND prev_revision <= ?",
            (lo, hi, hi, lo, hi, lo),
        ).fetchall()
        self.conn.executemany("DELETE FROM log WHERE id = ?", doomed)
        self.conn.execute(
            "INSERT INTO meta (name, value) VALUES (?, ?)"
            " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (_COMPACT_KEY, hi),
        )
        self.compact_revision = hi
        return hi
