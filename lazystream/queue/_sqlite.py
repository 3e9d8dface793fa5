"""The SQLite backend: one WAL file shared by every process with the same home.

The hub calls ``store`` with a batch of every session's rows at most once per linger, so
the cost that matters is pages written per batch. The row is compact and the log has no
index but its ``seq`` (the rowid): a batch appends to one leaf page or two, where an
index on the session would dirty a page per session in the batch. Reads of a session
scan the rowid range from ``max(after, the session's first seq)``: a live reader asks for
the few rows since its last read; a reader starting from 0 pays one scan of the
session's lifetime. Readers of other processes are woken by a datagram after each
commit (``_wakeup.py``) and, as a safety net, by a slow ``PRAGMA data_version`` poll;
either makes the watch find, in one query, which sessions were written past what it
named before, so the hub refreshes and wakes only those (``_changed``, ``read_many``).
"""
from __future__ import annotations

import functools
import json
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import filelock

from ..events import TERMINAL, Event
from ._backend import (
    TOMBSTONES,
    Backend,
    QueueBusy,
    Row,
    StorageError,
    Stored,
    decode,
    decode_ns,
    owner_alive,
)
from ._wakeup import Wakeup

__all__ = ["SqliteBackend"]

_VERSION = 2
_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id        INTEGER PRIMARY KEY,
    sid       TEXT NOT NULL UNIQUE,
    pid       INTEGER NOT NULL,
    host      TEXT NOT NULL,
    started   REAL NOT NULL,
    first_seq INTEGER NOT NULL,
    seen      REAL NOT NULL,
    ended     REAL,
    last_seq  INTEGER,
    status    TEXT
);
CREATE INDEX IF NOT EXISTS sessions_by_end ON sessions (ended);
CREATE TABLE IF NOT EXISTS events (
    seq     INTEGER PRIMARY KEY,
    session INTEGER NOT NULL,
    queue   TEXT NOT NULL,
    kind    TEXT NOT NULL,
    ns      TEXT NOT NULL,
    data    TEXT NOT NULL,
    ts      REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS cursors (
    sid   TEXT NOT NULL,
    queue TEXT NOT NULL,
    seq   INTEGER NOT NULL,
    owner TEXT,
    PRIMARY KEY (sid, queue)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pruned (
    sid    TEXT PRIMARY KEY,
    ended  REAL NOT NULL,
    status TEXT,
    at     REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL) WITHOUT ROWID;
"""
_OLD_TABLES = ("events", "cursors", "sessions", "pruned", "meta")   # sqlite_sequence cannot be dropped

# A batch goes in as one JSON value in one statement: CPython's sqlite3 releases the GIL
# around every statement step, and a busy producer can make each reacquisition wait.
_INSERT_MANY = ("INSERT INTO events (seq, session, queue, kind, ns, data, ts) "
                "SELECT ?1 + key, json_extract(value, '$[0]'), json_extract(value, '$[1]'), "
                "json_extract(value, '$[2]'), json_extract(value, '$[3]'), json_extract(value, '$[4]'), "
                "json_extract(value, '$[5]') FROM json_each(?2)")
_INSERT_ONE = "INSERT INTO events (seq, session, queue, kind, ns, data, ts) VALUES (?, ?, ?, ?, ?, ?, ?)"
_NEXT = ("(SELECT MAX(IFNULL((SELECT MAX(seq) FROM events), 0), "
         "IFNULL((SELECT v FROM meta WHERE k = 'floor'), 0)) + 1)")
_INSERT_ONE_AUTO = f"INSERT INTO events (seq, session, queue, kind, ns, data, ts) VALUES ({_NEXT}, ?, ?, ?, ?, ?, ?)"
# The common batch binds its rows as parameters of one ``INSERT … SELECT … FROM (VALUES
# …)``: binding costs ~0.7 µs a row where encoding the batch as JSON for ``json_each``
# and extracting it again cost ~3.4 µs (and the encoding holds the GIL). One statement
# per power-of-two size (so the sqlite3 module's statement cache keeps them prepared);
# the rows past the batch are NULLs the WHERE drops. A bigger batch goes in as several
# such statements in one transaction. At most 512 rows a statement: a prepared
# statement of 4,096 rows held ~5 MiB more of the process's memory for no measurable
# gain per row; 6 parameters a row stays under SQLite's 999 parameters before 3.32.
_VALUES_MAX = 512 if sqlite3.sqlite_version_info >= (3, 32, 0) else 128


@functools.cache
def _insert_values(size: int) -> str:
    rows = ",".join(f"({k},?,?,?,?,?,?)" for k in range(size))
    return ("INSERT INTO events (seq, session, queue, kind, ns, data, ts) "
            f"SELECT {_NEXT} + column1, column2, column3, column4, column5, column6, column7 "
            f"FROM (VALUES {rows}) WHERE column1 < ? ORDER BY column1")


def _values_params(rows: list[Row], ids: dict[str, int]) -> tuple[str, list[Any]]:
    """The statement and parameters that insert ``rows`` (2 ≤ len ≤ ``_VALUES_MAX``)."""
    size = 1 << (len(rows) - 1).bit_length()
    params: list[Any] = []
    for r in rows:
        params += (ids[r[0]], r[1], r[2], r[3], r[4], r[5])
    params += [None] * (6 * (size - len(rows)))
    params.append(len(rows))
    return _insert_values(size), params


def _insert_auto(conn: sqlite3.Connection, rows: list[Row], ids: dict[str, int]) -> int:
    """Insert ``rows`` (1 ≤ len ≤ ``_VALUES_MAX``) after the newest seq; return the last seq."""
    if len(rows) == 1:
        r = rows[0]
        last = conn.execute(_INSERT_ONE_AUTO, (ids[r[0]], r[1], r[2], r[3], r[4], r[5])).lastrowid
    else:
        last = conn.execute(*_values_params(rows, ids)).lastrowid
    assert last is not None   # an INSERT sets lastrowid
    return last


_NEXT_SEQ = "SELECT MAX(IFNULL((SELECT MAX(seq) FROM events), 0), IFNULL((SELECT v FROM meta WHERE k = 'floor'), 0))"
_TOP = "SELECT IFNULL(MAX(seq), 0) FROM events"
_CHANGED = ("SELECT s.sid, MAX(e.seq) FROM events e JOIN sessions s ON s.id = e.session WHERE e.seq > ? "
            "GROUP BY e.session")
_IN_CHUNK = 500         # ids in one IN (...) list
_SCAN = 100_000         # events read_many scans at most in one query, past the oldest cursor
_SAFETY_POLL = 0.25     # s between data_version checks where datagrams wake us (Linux)
_POLL = 0.005           # the same where nothing wakes us
_SEEN_EVERY = 30.0      # s between updates of a session's last activity (idle retention)
_ID_TTL = 30.0          # s a cached sid -> id mapping is trusted


def _names_the_file(method: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a ``sqlite3.Error`` into a ``StorageError`` naming the file and the fix."""
    @functools.wraps(method)
    def wrapper(self: SqliteBackend, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as e:
            hint = "free some disk space" if "full" in str(e) else \
                "if it is corrupted, move it away or delete it, or point LAZYSTREAM_HOME elsewhere"
            raise StorageError(f"queue database {self.path} failed: {e}; {hint}") from e
    return wrapper


class SqliteBackend(Backend):
    """Event log in one SQLite file (WAL, ``synchronous=NORMAL``)."""

    name = "sqlite"

    def __init__(self, path: str) -> None:
        self.path = self.where = path
        self._local = threading.local()
        self._write_lock = threading.Lock()     # one write transaction at a time in-process
        self._ids: dict[str, tuple[int, float]] = {}   # sid -> (session id, when resolved)
        self._seen: dict[int, float] = {}              # session id -> last activity, not yet written
        self._last_seen_write = time.monotonic()
        self._wakeup = Wakeup(path + ".wake", self._changed) if Wakeup.available else None
        self._on_change: Callable[[Iterable[str] | None], None] = lambda sids: None
        self._changes = threading.Lock()
        self._horizon = 0   # every event with a seq up to this was named to the hub (watch)
        self._watching = False
        self._closed = False
        self._init_file()
        self._wconn = self._connect()

    # --- setup ------------------------------------------------------------------------
    def _init_file(self) -> None:
        if not os.path.exists(self.path):
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        try:
            # Two processes may create the schema at once; the file lock orders them.
            with filelock.FileLock(self.path + ".lock", timeout=30, mode=0o600):
                conn = sqlite3.connect(self.path, isolation_level=None, timeout=30)
                try:
                    conn.execute("PRAGMA journal_mode=WAL")
                    if conn.execute("PRAGMA user_version").fetchone()[0] != _VERSION:
                        # An older layout: its events are transient (retention), so start over.
                        for table in _OLD_TABLES:
                            conn.execute(f"DROP TABLE IF EXISTS {table}")
                        conn.executescript(_SCHEMA)
                        conn.execute(f"PRAGMA user_version={_VERSION}")
                    else:
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
        # The log is appended and read near its end: a small page cache per connection is
        # enough, and keeps memory flat (SQLite's default is 2 MiB per connection).
        conn.execute("PRAGMA cache_size=-256")
        return conn

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        return conn

    # --- writing ----------------------------------------------------------------------
    @_names_the_file
    def store(self, rows: list[Row], cursors: dict[tuple[str, str], int], owner: str) -> list[int]:
        conn = self._wconn
        now = time.monotonic()
        if rows and not cursors and now - self._last_seen_write < _SEEN_EVERY:
            ids = self._known_ids(rows, now)
            if ids is not None and not any(r[2] == TERMINAL for r in rows):
                # The common batch: one statement, its own transaction (a big one: a few,
                # in one). CPython's sqlite3 releases the GIL around each statement, and
                # under a busy event loop or producer every re-acquisition can wait a
                # switch interval: few statements, no session lookups.
                with self._write_lock:
                    if len(rows) <= _VALUES_MAX:
                        last = _insert_auto(conn, rows, ids)
                    else:
                        conn.execute("BEGIN IMMEDIATE")
                        try:
                            for i in range(0, len(rows), _VALUES_MAX):
                                last = _insert_auto(conn, rows[i:i + _VALUES_MAX], ids)
                            conn.execute("COMMIT")
                        except BaseException:
                            if conn.in_transaction:
                                conn.execute("ROLLBACK")
                            raise
                self._own(last - len(rows) + 1, last)
                if self._wakeup is not None:
                    self._wakeup.ping_peers()
                return list(range(last - len(rows) + 1, last + 1))
        with self._write_lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                base = conn.execute(_NEXT_SEQ).fetchone()[0] + 1
                ids = self._session_ids(conn, rows, base, now)
                if len(rows) == 1:
                    r = rows[0]
                    conn.execute(_INSERT_ONE, (base, ids[r[0]], r[1], r[2], r[3], r[4], r[5]))
                elif rows:
                    packed = json.dumps([(ids[r[0]],) + r[1:] for r in rows], ensure_ascii=False)
                    conn.execute(_INSERT_MANY, (base, packed))
                ends = [(r[5], _status_of(r[4]), base + i, ids[r[0]]) for i, r in enumerate(rows) if r[2] == TERMINAL]
                if ends:
                    conn.executemany("UPDATE sessions SET ended = ?, status = ?, last_seq = ? WHERE id = ?", ends)
                if cursors:
                    conn.executemany("UPDATE cursors SET seq = ? WHERE sid = ? AND queue = ? AND owner = ?",
                                     [(pos, sid, queue, owner) for (sid, queue), pos in cursors.items()])
                if self._seen and now - self._last_seen_write >= _SEEN_EVERY:
                    conn.executemany("UPDATE sessions SET seen = ? WHERE id = ?",
                                     [(t, i) for i, t in self._seen.items()])
                    self._seen.clear()
                    self._last_seen_write = now
                conn.execute("COMMIT")
            except BaseException:
                self._ids.clear()   # ids made in the rolled-back transaction do not exist
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        if rows:
            self._own(base, base + len(rows) - 1)
            if self._wakeup is not None:
                self._wakeup.ping_peers()
        return list(range(base, base + len(rows)))

    def _own(self, first: int, last: int) -> None:
        """This process committed seqs ``first..last``: move the watch's horizon past them
        when nothing of another process lies between (seqs grow in commit order). Else a
        process that writes much and rarely hears from others would, at the next commit of
        another process, have ``_changed`` scan (and name) everything it wrote itself."""
        with self._changes:
            if self._horizon >= first - 1:
                self._horizon = max(self._horizon, last)

    def _known_ids(self, rows: list[Row], now: float) -> dict[str, int] | None:
        """The session ids of ``rows`` if every one is cached and fresh, else ``None``."""
        ids: dict[str, int] = {}
        cache, seen, wall = self._ids, self._seen, time.time()
        for row in rows:
            sid = row[0]
            if sid not in ids:
                known = cache.get(sid)
                if known is None or now - known[1] >= _ID_TTL:
                    return None
                ids[sid] = known[0]
                seen[known[0]] = wall
        return ids

    def _session_ids(self, conn: sqlite3.Connection, rows: list[Row], base: int, now: float) -> dict[str, int]:
        ids: dict[str, int] = {}
        cache, seen, wall = self._ids, self._seen, time.time()
        for i, row in enumerate(rows):
            sid = row[0]
            if sid in ids:
                continue
            known = cache.get(sid)
            if known is not None and now - known[1] < _ID_TTL:
                ids[sid] = known[0]
            else:
                conn.execute("INSERT INTO sessions (sid, pid, host, started, first_seq, seen) VALUES (?, ?, ?, ?, ?, ?) "
                             "ON CONFLICT (sid) DO NOTHING", (sid, os.getpid(), socket.gethostname(), row[5],
                                                              base + i, row[5]))
                ids[sid] = conn.execute("SELECT id FROM sessions WHERE sid = ?", (sid,)).fetchone()[0]
                if len(cache) > 100_000:
                    cache.clear()
                cache[sid] = (ids[sid], now)
            seen[ids[sid]] = wall
        return ids

    # --- dequeue owners ---------------------------------------------------------------
    @_names_the_file
    def claim(self, sid: str, queue: str, owner: str) -> int:
        conn = self._wconn   # every write on one connection: its data_version moves only for others
        with self._write_lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute("SELECT seq, owner FROM cursors WHERE sid = ? AND queue = ?", (sid, queue)).fetchone()
                if row is not None and row[1] not in (None, owner) and owner_alive(row[1]):
                    raise QueueBusy(
                        f"queue {queue!r} of session {sid!r} is being dequeued by another process "
                        f"(owner {row[1]}); a queue has one destructive reader process at a time. Read it "
                        "with read(after=seq) / tail() from this one, or dequeue it in that process")
                pos = 0 if row is None else row[0]
                conn.execute("INSERT OR REPLACE INTO cursors (sid, queue, seq, owner) VALUES (?, ?, ?, ?)",
                             (sid, queue, pos, owner))
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        return pos

    @_names_the_file
    def release(self, cursors: dict[tuple[str, str], int], owner: str) -> None:
        conn = self._wconn
        with self._write_lock:
            conn.executemany("UPDATE cursors SET seq = ?, owner = NULL WHERE sid = ? AND queue = ? AND owner = ?",
                             [(pos, sid, queue, owner) for (sid, queue), pos in cursors.items()])

    # --- reading ----------------------------------------------------------------------
    @_names_the_file
    def read(self, sid: str, queues: tuple[str, ...] | None, after: int, limit: int | None) -> list[Event]:
        conn = self._conn()
        found = conn.execute("SELECT id, first_seq FROM sessions WHERE sid = ?", (sid,)).fetchone()
        if found is None:
            return []
        session, first = found
        where = "seq > ? AND session = ?"
        args: tuple = (max(after, first - 1), session)
        if queues is not None:
            where += " AND queue = ?" if len(queues) == 1 else f" AND queue IN ({','.join('?' * len(queues))})"
            args += tuple(queues)
        rows = conn.execute(f"SELECT seq, queue, kind, ns, data, ts FROM events WHERE {where} ORDER BY seq LIMIT ?",
                            (*args, -1 if limit is None else limit)).fetchall()
        return [Event(seq, sid, queue, kind, decode_ns(ns), decode(data), ts) for seq, queue, kind, ns, data, ts in rows]

    @_names_the_file
    def session_info(self, sid: str) -> dict[str, Any] | None:
        conn = self._conn()
        row = conn.execute("SELECT pid, host, started, ended, status FROM sessions WHERE sid = ?", (sid,)).fetchone()
        if row is not None:
            return dict(zip(("pid", "host", "started", "ended", "status"), row), pruned=False)
        row = conn.execute("SELECT ended, status FROM pruned WHERE sid = ?", (sid,)).fetchone()
        if row is not None:
            return {"pid": None, "host": None, "started": None, "ended": row[0], "status": row[1], "pruned": True}
        return None

    @_names_the_file
    def sessions(self, limit: int | None) -> list[dict[str, Any]]:
        rows = self._conn().execute(
            "SELECT s.sid, s.pid, s.host, s.started, s.ended, s.status, "
            "(SELECT COUNT(*) FROM events e WHERE e.seq BETWEEN s.first_seq AND IFNULL(s.last_seq, 1e18) "
            "AND e.session = s.id), MAX(s.seen, IFNULL(s.ended, 0)) "
            "FROM sessions s ORDER BY s.started DESC, s.id DESC LIMIT ?", (-1 if limit is None else limit,))
        keys = ("sid", "pid", "host", "started", "ended", "status", "events", "last")
        return [dict(zip(keys, row)) for row in rows]

    # --- retention --------------------------------------------------------------------
    @_names_the_file
    def expire(self, retention: float, idle_retention: float, now: float) -> int:
        cutoff, idle_cutoff = now - retention, now - idle_retention
        conn = self._wconn
        with self._write_lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                gone = conn.execute(
                    "SELECT id, sid, first_seq, last_seq, ended, status FROM sessions "
                    "WHERE (ended IS NOT NULL AND ended < ?) OR (ended IS NULL AND seen < ?)",
                    (cutoff, idle_cutoff)).fetchall()
                deleted = 0
                top = conn.execute("SELECT MAX(seq) FROM events").fetchone()[0]
                if top is not None:
                    # Remember the highest seq, so deleting the newest rows never lets a seq recur.
                    conn.execute("INSERT OR REPLACE INTO meta (k, v) VALUES ('floor', MAX(?, "
                                 "IFNULL((SELECT v FROM meta WHERE k = 'floor'), 0)))", (top,))
                if gone:
                    lo = min(g[2] for g in gone)
                    hi = top if any(g[3] is None for g in gone) else max(g[3] for g in gone)
                    conn.execute("CREATE TEMP TABLE IF NOT EXISTS gone (id INTEGER PRIMARY KEY)")
                    conn.execute("DELETE FROM temp.gone")
                    conn.executemany("INSERT INTO temp.gone (id) VALUES (?)", [(g[0],) for g in gone])
                    if hi is not None:
                        deleted += conn.execute("DELETE FROM events WHERE seq BETWEEN ? AND ? AND session IN "
                                                "(SELECT id FROM temp.gone)", (lo, hi)).rowcount
                    conn.executemany("DELETE FROM cursors WHERE sid = ?", [(g[1],) for g in gone])
                    conn.execute("DELETE FROM sessions WHERE id IN (SELECT id FROM temp.gone)")
                    conn.executemany("INSERT OR REPLACE INTO pruned (sid, ended, status, at) VALUES (?, ?, ?, ?)",
                                     [(g[1], g[4] if g[4] is not None else now, g[5] or "idle", now) for g in gone])
                # Consumed events of sessions still open, once older than the retention.
                bound = self._seq_at(conn, cutoff)
                if bound:
                    deleted += conn.execute(
                        "DELETE FROM events WHERE seq < ? AND ts < ? AND EXISTS (SELECT 1 FROM cursors c "
                        "JOIN sessions s ON s.sid = c.sid WHERE s.id = events.session AND c.queue = events.queue "
                        "AND c.seq >= events.seq)", (bound, cutoff)).rowcount
                conn.execute("DELETE FROM pruned WHERE at < ?", (now - max(retention, TOMBSTONES),))
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        self._ids.clear()
        return deleted

    @staticmethod
    def _seq_at(conn: sqlite3.Connection, when: float) -> int:
        """The first seq stored at or after ``when`` (a binary search over the rowid;
        ``ts`` grows with ``seq`` up to clock skew between processes)."""
        lo_hi = conn.execute("SELECT MIN(seq), MAX(seq) FROM events").fetchone()
        if lo_hi[0] is None:
            return 0
        lo, hi = lo_hi
        while lo < hi:
            mid = (lo + hi) // 2
            row = conn.execute("SELECT seq, ts FROM events WHERE seq >= ? ORDER BY seq LIMIT 1", (mid,)).fetchone()
            if row[1] < when:
                lo = row[0] + 1
            else:
                hi = mid
        return lo

    # --- other processes --------------------------------------------------------------
    def watch(self, on_change: Callable[[Iterable[str] | None], None]) -> None:
        if self._watching:
            return
        self._watching = True
        self._on_change = on_change
        # (Commits before this line are the caller's to re-read: the hub distrusts its
        # caches once when it starts watching.)
        try:
            self._horizon = self._conn().execute(_TOP).fetchone()[0]
        except sqlite3.Error:
            pass   # (the store fails: so will the caller's next read, which says how)
        if self._wakeup is not None:
            self._wakeup.listen()
        threading.Thread(target=self._poll_loop, name="lazystream-poll", daemon=True).start()

    def _changed(self) -> None:
        """Another process committed: name to the hub the sessions written since the
        last call, found with one query (seqs grow in commit order, so everything past
        the horizon is new). The hub then brings only those sessions' caches up to date,
        with one ``read_many``, and wakes only their readers: with many sessions read
        here, "something changed" alone would have every reader read the file."""
        with self._changes:
            try:
                changed = self._conn().execute(_CHANGED, (self._horizon,)).fetchall()
            except sqlite3.Error:
                changed = None
            if changed:
                self._horizon = max(self._horizon, max(top for _, top in changed))
        if changed is None:
            self._on_change(None)   # not known what: every cache is distrusted
        elif changed:
            self._on_change([sid for sid, _ in changed])

    @_names_the_file
    def read_many(self, afters: dict[str, int], limit: int) -> dict[str, list[Stored]]:
        """One scan of the log's recent end for every session whose ``after`` lies in it
        (sessions read continuously, the common case); a query of its own for the rest."""
        conn = self._conn()
        found: dict[int, tuple[str, int]] = {}   # session id -> (sid, after)
        sids = list(afters)
        for i in range(0, len(sids), _IN_CHUNK):
            part = sids[i:i + _IN_CHUNK]
            for session, sid, first in conn.execute(
                    f"SELECT id, sid, first_seq FROM sessions WHERE sid IN ({','.join('?' * len(part))})", part):
                found[session] = (sid, max(afters[sid], first - 1))
        out: dict[str, list[Stored]] = {sid: [] for sid in afters}
        if not found:
            return out
        top = conn.execute(_TOP).fetchone()[0]
        near = {session: after for session, (_, after) in found.items() if top - after <= _SCAN}
        for session, (sid, after) in found.items():
            if session not in near:
                out[sid] = [tuple(row) for row in conn.execute(
                    "SELECT seq, queue, kind, ns, data, ts FROM events WHERE seq > ? AND session = ? "
                    "ORDER BY seq LIMIT ?", (after, session, limit))]
        if near:
            ids = list(near)
            for i in range(0, len(ids), _IN_CHUNK):
                chunk = ids[i:i + _IN_CHUNK]
                low = min(near[session] for session in chunk)
                for seq, session, queue, kind, ns, data, ts in conn.execute(
                        f"SELECT seq, session, queue, kind, ns, data, ts FROM events WHERE seq > ? AND session IN "
                        f"({','.join('?' * len(chunk))}) ORDER BY seq", (low, *chunk)):
                    if seq > near[session]:
                        rows = out[found[session][0]]
                        if len(rows) < limit:
                            rows.append((seq, queue, kind, ns, data, ts))
        return out

    def _poll_loop(self) -> None:
        """The safety net (and, off Linux, the only signal): notice other processes'
        commits through ``PRAGMA data_version`` of the writer's connection, which moves
        only for commits by *other* connections."""
        try:
            with self._write_lock:
                version = self._wconn.execute("PRAGMA data_version").fetchone()[0]
            interval = _SAFETY_POLL if self._wakeup is not None else _POLL
            while not self._closed:
                time.sleep(interval)
                with self._write_lock:
                    now = self._wconn.execute("PRAGMA data_version").fetchone()[0]
                if now != version:
                    version = now
                    self._changed()
        except sqlite3.Error:
            return

    def shared(self) -> bool:
        # Without datagrams other processes poll, and nothing says whether they do.
        return self._wakeup is None or self._wakeup.has_peers()

    def close(self) -> None:
        self._closed = True
        if self._wakeup is not None:
            self._wakeup.close()


def _status_of(data_json: str) -> str:
    data = json.loads(data_json)
    return data.get("status", "ok") if isinstance(data, dict) else "ok"
