"""The LM response cache: in memory and in ``$LAZYSTREAM_HOME/lm_cache.db`` (SQLite).

A documented process-wide cache (the one global state that outlives a call). Keys are
SHA-256 digests of the request: model, messages and parameters. Values are the
reply text. The memory layer keeps the most recent ``MEMORY_ENTRIES`` replies; the SQLite
layer keeps everything until ``clear()``. ``LAZYSTREAM_HOME`` is re-read at each use, so
a test or a user that moves it gets a cache in the new place.
"""
from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from collections import OrderedDict
from typing import Any

__all__ = ["MEMORY_ENTRIES", "clear", "get", "key", "put"]

MEMORY_ENTRIES = 4096

_lock = threading.Lock()
_memory: OrderedDict[str, str] = OrderedDict()
_conn: sqlite3.Connection | None = None
_conn_path: str | None = None


def key(request: dict[str, Any]) -> str:
    """Return the cache key of a request dict (order of dict keys does not matter)."""
    text = json.dumps(request, sort_keys=True, ensure_ascii=False, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


def _path() -> str:
    home = os.path.expanduser(os.environ.get("LAZYSTREAM_HOME") or "~/.lazystream")
    return os.path.join(home, "lm_cache.db")


def _db() -> sqlite3.Connection:
    """Return the connection for the current home (call with ``_lock`` held)."""
    global _conn, _conn_path
    path = _path()
    if _conn is not None and _conn_path == path:
        return _conn
    if _conn is not None:
        _conn.close()
        _memory.clear()  # the memory layer mirrors one file
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    fresh = not os.path.exists(path)
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    if fresh:
        os.chmod(path, 0o600)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA busy_timeout=5000")
    conn.execute("CREATE TABLE IF NOT EXISTS lm_cache "
                 "(key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL NOT NULL)")
    _conn, _conn_path = conn, path
    return conn


def get(cache_key: str) -> str | None:
    """Return the cached reply for ``cache_key``, or ``None``."""
    with _lock:
        conn = _db()
        value = _memory.get(cache_key)
        if value is not None:
            _memory.move_to_end(cache_key)
            return value
        row = conn.execute("SELECT value FROM lm_cache WHERE key = ?", (cache_key,)).fetchone()
        if row is None:
            return None
        _remember(cache_key, row[0])
        return row[0]


def put(cache_key: str, value: str) -> None:
    """Store ``value`` under ``cache_key`` in memory and on disk."""
    with _lock:
        conn = _db()
        _remember(cache_key, value)
        conn.execute("INSERT OR REPLACE INTO lm_cache (key, value, created) VALUES (?, ?, ?)",
                     (cache_key, value, time.time()))


def clear() -> None:
    """Forget every cached reply, in memory and on disk."""
    with _lock:
        conn = _db()
        _memory.clear()
        conn.execute("DELETE FROM lm_cache")


def _remember(cache_key: str, value: str) -> None:
    _memory[cache_key] = value
    _memory.move_to_end(cache_key)
    while len(_memory) > MEMORY_ENTRIES:
        _memory.popitem(last=False)
