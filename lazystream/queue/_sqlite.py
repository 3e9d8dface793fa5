"""The SQLite backend: one WAL file shared by every process with the same home.

One writer thread per process stores appended events in batches (group commit), so a
producer pays a JSON encode and a list append per token, not a transaction. Readers use a
connection of their own thread; a destructive read advances a cursor row instead of
deleting events, which keeps the log replayable (``read(after=seq)``) until retention
prunes it. Readers in this process are notified after each commit; readers in other
processes notice new commits through ``PRAGMA data_version`` every few milliseconds.
"""
from __future__ import annotations

import atexit
import functools
import json
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

import filelock

from ..events import TERMINAL, Event
from ._backend import Backend, Row, StorageError, make_event
from ._wakeup import Wakeup

__all__ = ["SqliteBackend"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq   INTEGER PRIMARY KEY AUTOINCREMENT,
    sid   TEXT NOT NULL,
    queue TEXT NOT NULL,
    kind  TEXT NOT NULL,
    ns    TEXT NOT NULL,
    data  TEXT NOT NULL,
    ts    REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_queue ON events (sid, queue, seq);
CREATE INDEX IF NOT EXISTS events_by_session ON events (sid, seq);
CREATE TABLE IF NOT EXISTS cursors (
    sid   TEXT NOT NULL,
    queue TEXT NOT NULL,
    seq   INTEGER NOT NULL,
    PRIMARY KEY (sid, queue)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sessions (
    sid     TEXT PRIMARY KEY,
    pid     INTEGER NOT NULL,
    started REAL NOT NULL,
    ended   REAL,
    status  TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sessions_by_end ON sessions (ended);
"""

# A batch goes in and out as one JSON value in one statement. CPython's sqlite3 releases
# the GIL around every statement step, and while a producer computes between tokens (an
# SDK parsing SSE) each reacquisition can cost a whole switch interval (5 ms): the fewer
# steps per store and per read, the closer in-process readers stay to the producer.
_INSERT_ONE = "INSERT INTO events (sid, queue, kind, ns, data, ts) VALUES (?, ?, ?, ?, ?, ?)"
_INSERT_MANY = ("INSERT INTO events (sid, queue, kind, ns, data, ts) "
                "SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'), "
                "json_extract(value, '$[3]'), json_extract(value, '$[4]'), json_extract(value, '$[5]') "
                "FROM json_each(?) ORDER BY key")
_TAKE = ("SELECT (SELECT seq FROM cursors WHERE sid = ?1 AND queue = ?2), "
         "(SELECT json_group_array(json_array(seq, kind, json(data))) FROM "
         "(SELECT seq, kind, data FROM events WHERE sid = ?1 AND queue = ?2 "
         "AND seq > IFNULL((SELECT seq FROM cursors WHERE sid = ?1 AND queue = ?2), 0) "
         "ORDER BY seq LIMIT ?3))")

_AFTER_CURSOR = "IFNULL((SELECT c.seq FROM cursors c WHERE c.sid = ?1 AND c.queue = ?2), 0)"
_MAX_PENDING = 200_000          # producers wait above this many unstored events
_POLL = 0.005                   # seconds between checks for other processes' commits
_SAFETY_POLL = 0.25             # the same check where other processes wake us (Linux)
_QUIET = 0.001                  # an append this long after the last one is stored directly


def _names_the_file(method: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a ``sqlite3.DatabaseError`` (a file corrupted past its header, say) into a
    ``StorageError`` that names the file and the fix."""
    @functools.wraps(method)
    def wrapper(self: SqliteBackend, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as e:
            raise StorageError(
                f"queue database {self.path} failed: {e}; if it is corrupted, move it away or "
                "delete it, or point LAZYSTREAM_HOME elsewhere") from e
    return wrapper


class SqliteBackend(Backend):
    """Event log in one SQLite file (WAL, ``synchronous=NORMAL``)."""

    def __init__(self, path: str, *, retention: float = 3600.0, idle_retention: float = 86400.0) -> None:
        super().__init__()
        self.path = path
        self.retention = retention
        self.idle_retention = idle_retention
        self._local = threading.local()
        self._write_lock = threading.Lock()     # one write transaction at a time in-process
        self._io = threading.Lock()
        self._work = threading.Condition(self._io)   # writer waits for appends
        self._done = threading.Condition(self._io)   # sync() waits for stores
        self._pending: list[Row] = []
        self._appended = 0
        self._stored = 0
        self._error: BaseException | None = None
        self._writer: threading.Thread | None = None
        self._closed = False
        self._storing = False
        self._last_append = 0.0
        self._wakeup = Wakeup(path + ".wake", self.notify) if Wakeup.available else None
        self._known_sids: set[str] = set()
        self._last_prune = 0.0
        self._init_file()
        self._wconn = self._connect()
        ref = weakref.ref(self)
        atexit.register(lambda: (b := ref()) is not None and b.close())

    # --- setup ------------------------------------------------------------------------
    def _init_file(self) -> None:
        if not os.path.exists(self.path):
            fd = os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600)
            os.close(fd)
        try:
            # Two processes may create the schema at once; the file lock orders them.
            with filelock.FileLock(self.path + ".lock", timeout=30, mode=0o600):
                conn = sqlite3.connect(self.path, isolation_level=None, timeout=30)
                try:
                    conn.execute("PRAGMA journal_mode=WAL")
                    conn.executescript(_SCHEMA)
                finally:
                    conn.close()
        except sqlite3.DatabaseError as e:
            raise StorageError(
                f"queue database {self.path} is corrupted or not a SQLite file ({e}); "
                "move it away or delete it, or point LAZYSTREAM_HOME elsewhere") from e

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=30, check_same_thread=False)
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
            self._local.version = conn.execute("PRAGMA data_version").fetchone()[0]
        return conn

    # --- writing ----------------------------------------------------------------------
    def append(self, row: Row) -> None:
        with self._io:
            if self._error is not None:
                raise StorageError(f"queue database {self.path}: storing failed: {self._error}") from self._error
            now = time.monotonic()
            quiet, self._last_append = now - self._last_append > _QUIET, now
            direct = self._closed or (quiet and not self._pending and not self._storing)
            self._appended += 1
            if self._writer is None:   # it also prunes, so it runs even when stores are direct
                self._writer = threading.Thread(target=self._write_loop, name="lazystream-writer", daemon=True)
                self._writer.start()
            if direct:
                # A lone event after a pause: store it on this thread and save the writer
                # thread's wake-up; under load, events batch on the writer thread instead.
                self._storing = True
            else:
                self._pending.append(row)
                if len(self._pending) == 1:
                    self._work.notify()
                while len(self._pending) > _MAX_PENDING and self._error is None:
                    self._done.wait(0.1)
        if direct:
            self._store_and_announce([row])

    def _store_and_announce(self, batch: list[Row]) -> None:
        """Store ``batch`` (the caller set ``_storing``), then wake writers and readers."""
        error = None
        try:
            self._store(batch)
        except BaseException as e:  # noqa: BLE001 - surfaced to every producer and reader
            error = e
        with self._io:
            self._storing = False
            if error is not None:
                self._error = error
            else:
                self._stored += len(batch)
            self._done.notify_all()
            if self._pending:
                self._work.notify()
        if error is None:
            self.notify({(r[0], r[1]) for r in batch})
        else:
            self.notify()
        if error is not None:
            raise StorageError(f"queue database {self.path}: storing failed: {error}") from error

    def sync(self) -> None:
        # A failed store is raised to producers (append); readers go on reading what was
        # stored, so a write failure never makes stored events unreadable.
        if self._stored == self._appended:   # the common, lock-free case
            return
        with self._io:
            target = self._appended
            while self._stored < target and self._error is None:
                self._done.wait(1.0)

    def _write_loop(self) -> None:
        while True:
            with self._io:
                while (not self._pending or self._storing) and not self._closed:
                    if not self._work.wait(self._prune_interval()) and not self._pending:
                        break
                if self._storing:
                    continue
                batch, self._pending = self._pending, []
                if self._closed and not batch:
                    return
                self._storing = bool(batch)
            try:
                if batch:
                    self._store_and_announce(batch)
                self._maybe_prune()
            except BaseException:  # noqa: BLE001 - recorded in _error, raised to producers
                return

    def _store(self, batch: list[Row]) -> None:
        conn = self._wconn
        new_sids = [(r[0], os.getpid(), r[5]) for r in batch if r[0] not in self._known_sids]
        ends = [(r[5], _status_of(r[4]), r[0]) for r in batch if r[2] == TERMINAL]
        insert = (_INSERT_ONE, batch[0]) if len(batch) == 1 else \
            (_INSERT_MANY, (json.dumps(batch, ensure_ascii=False),))
        with self._write_lock:
            if not new_sids and not ends:
                conn.execute(*insert)   # one statement is its own transaction: one GIL release
            else:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    if new_sids:
                        conn.executemany("INSERT OR IGNORE INTO sessions (sid, pid, started) VALUES (?, ?, ?)",
                                         new_sids)
                    conn.execute(*insert)
                    if ends:
                        conn.executemany("UPDATE sessions SET ended = ?, status = ? WHERE sid = ?", ends)
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            if self._wakeup is not None:
                self._wakeup.ping_peers()
        if len(self._known_sids) > 100_000:
            self._known_sids.clear()
        self._known_sids.update(s for s, _, _ in new_sids)

    def _prune_interval(self) -> float:
        return max(0.05, min(60.0, self.retention / 4))

    def _maybe_prune(self) -> None:
        now = time.time()
        if now - self._last_prune >= self._prune_interval():
            self._last_prune = now
            self.prune(self.retention, now)

    # --- reading ----------------------------------------------------------------------
    @_names_the_file
    def read(self, sid: str, queues: tuple[str, ...] | None, after: int, limit: int | None) -> list[Event]:
        self.sync()
        lim = -1 if limit is None else limit
        where = "sid = ? AND seq > ?"
        args: tuple = (sid, after)
        if queues is not None:
            where += f" AND queue IN ({','.join('?' * len(queues))})"
            args += tuple(queues)
        packed = self._conn().execute(
            "SELECT json_group_array(json_array(seq, queue, kind, json(ns), json(data), ts)) FROM "
            f"(SELECT seq, queue, kind, ns, data, ts FROM events WHERE {where} ORDER BY seq LIMIT ?)",
            (*args, lim)).fetchone()[0]
        return [Event(seq, sid, queue, kind, tuple(ns), data, ts)
                for seq, queue, kind, ns, data, ts in _unpack(packed)]

    @_names_the_file
    def take(self, sid: str, queue: str, limit: int | None) -> list[Any]:
        self.sync()
        conn = self._conn()
        lim = -1 if limit is None else limit
        while True:
            cursor, packed = conn.execute(_TAKE, (sid, queue, lim)).fetchone()
            rows = _unpack(packed)
            if not rows:
                return []
            # Compare-and-swap the cursor: if another reader (thread or process) moved it
            # since we read it, our rows may be theirs; read again.
            with self._write_lock:
                if cursor is None:
                    moved = conn.execute("INSERT OR IGNORE INTO cursors (sid, queue, seq) VALUES (?, ?, ?)",
                                         (sid, queue, rows[-1][0])).rowcount
                else:
                    moved = conn.execute("UPDATE cursors SET seq = ? WHERE sid = ? AND queue = ? AND seq = ?",
                                         (rows[-1][0], sid, queue, cursor)).rowcount
            if moved == 1:
                return [data["text"] if kind == "trace" and type(data) is dict and "text" in data else data
                        for _, kind, data in rows]

    @_names_the_file
    def peek(self, sid: str, queue: str) -> Event | None:
        self.sync()
        row = self._conn().execute(
            f"SELECT seq, sid, queue, kind, ns, data, ts FROM events WHERE sid = ?1 AND queue = ?2 "
            f"AND seq > {_AFTER_CURSOR} ORDER BY seq LIMIT 1", (sid, queue)).fetchone()
        return None if row is None else make_event(*row)

    @_names_the_file
    def size(self, sid: str, queue: str) -> int:
        self.sync()
        return self._conn().execute(
            f"SELECT COUNT(*) FROM events WHERE sid = ?1 AND queue = ?2 AND seq > {_AFTER_CURSOR}",
            (sid, queue)).fetchone()[0]

    @_names_the_file
    def clear(self, sid: str, queue: str) -> None:
        self.sync()
        conn = self._conn()
        with self._write_lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                last = conn.execute("SELECT MAX(seq) FROM events WHERE sid = ? AND queue = ?",
                                    (sid, queue)).fetchone()[0]
                if last is not None:
                    conn.execute("INSERT OR REPLACE INTO cursors (sid, queue, seq) VALUES (?, ?, ?)",
                                 (sid, queue, last))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    @_names_the_file
    def session_info(self, sid: str) -> dict[str, Any] | None:
        self.sync()
        row = self._conn().execute("SELECT pid, started, ended, status FROM sessions WHERE sid = ?",
                                   (sid,)).fetchone()
        return None if row is None else dict(zip(("pid", "started", "ended", "status"), row))

    @_names_the_file
    def prune(self, retention: float, now: float) -> int:
        cutoff = now - retention
        conn = self._conn() if threading.current_thread() is not self._writer else self._wconn
        with self._write_lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                gone = "SELECT sid FROM sessions WHERE ended IS NOT NULL AND ended < ?"
                deleted = conn.execute(f"DELETE FROM events WHERE sid IN ({gone})", (cutoff,)).rowcount
                conn.execute(f"DELETE FROM cursors WHERE sid IN ({gone})", (cutoff,))
                conn.execute("DELETE FROM sessions WHERE ended IS NOT NULL AND ended < ?", (cutoff,))
                # Sessions that never end (a service thread's implicit tag) are dropped once
                # idle for idle_retention, and meanwhile shed what their readers consumed
                # long ago, so the file does not grow without bound.
                idle = "SELECT s.sid FROM sessions s WHERE s.ended IS NULL AND s.started < ?1 AND NOT " \
                       "EXISTS (SELECT 1 FROM events e WHERE e.sid = s.sid AND e.ts >= ?1)"
                idle_cutoff = now - max(retention, self.idle_retention)
                deleted += conn.execute(f"DELETE FROM events WHERE sid IN ({idle})", (idle_cutoff,)).rowcount
                conn.execute(f"DELETE FROM cursors WHERE sid IN ({idle})", (idle_cutoff,))
                conn.execute(f"DELETE FROM sessions WHERE sid IN ({idle})", (idle_cutoff,))
                deleted += conn.execute(
                    "DELETE FROM events WHERE seq IN (SELECT e.seq FROM cursors c JOIN events e "
                    "ON e.sid = c.sid AND e.queue = c.queue AND e.seq <= c.seq WHERE e.ts < ?)",
                    (cutoff,)).rowcount
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        self._known_sids.clear()
        return deleted

    # --- waiting ----------------------------------------------------------------------
    def _before_wait(self) -> bool:
        return self._wakeup is not None and self._wakeup.listen()

    def _external_poll_interval(self) -> float | None:
        # With wake-ups, a slow check is only a safety net: a reader never blocks for ever.
        return _SAFETY_POLL if self._wakeup is not None else _POLL

    def _poll_external(self) -> bool:
        conn = self._conn()
        version = conn.execute("PRAGMA data_version").fetchone()[0]
        if version != self._local.version:
            self._local.version = version
            return True
        return False

    def close(self) -> None:
        with self._io:
            if self._closed:
                return
            self._closed = True
            self._work.notify()
        if self._writer is not None and self._writer is not threading.current_thread():
            self._writer.join(timeout=30)
        if self._wakeup is not None:
            self._wakeup.close()


def _unpack(packed: str) -> list[list]:
    """Decode a ``json_group_array`` of rows, in ``seq`` order (SQLite does not promise
    that an aggregate keeps its subquery's order, so sort; it is already sorted)."""
    rows = json.loads(packed)
    rows.sort(key=_first)
    return rows


def _first(row: list) -> Any:
    return row[0]


def _status_of(data_json: str) -> str:
    data = json.loads(data_json)
    return data.get("status", "ok") if isinstance(data, dict) else "ok"
