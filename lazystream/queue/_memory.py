"""The memory backend: the same semantics as SQLite, inside one process, nothing on disk.

Chosen with ``LAZYSTREAM_QUEUE=memory``. Stores synchronously under one lock; readers are
notified after every append.
"""
from __future__ import annotations

import bisect
import json
import os
import threading
from collections import defaultdict
from typing import Any

from ..events import TERMINAL, Event
from ._backend import Backend, Row, make_event, project

__all__ = ["MemoryBackend"]


class MemoryBackend(Backend):
    """Event log in process memory."""

    def __init__(self, *, retention: float = 3600.0, idle_retention: float = 86400.0) -> None:
        super().__init__()
        self.retention = retention
        self.idle_retention = idle_retention
        self._lock = threading.Lock()
        self._seq = 0
        # sid -> list of (seq, sid, queue, kind, ns, data, ts) rows, in seq order
        self._log: dict[str, list[tuple]] = defaultdict(list)
        # (sid, queue) -> the same rows, one queue's only
        self._queues: dict[tuple[str, str], list[tuple]] = defaultdict(list)
        self._last_prune = 0.0
        self._cursors: dict[tuple[str, str], int] = {}
        self._sessions: dict[str, dict[str, Any]] = {}

    def append(self, row: Row) -> None:
        sid, queue, kind, ns, data, ts = row
        with self._lock:
            self._seq += 1
            record = (self._seq, sid, queue, kind, ns, data, ts)
            self._log[sid].append(record)
            self._queues[(sid, queue)].append(record)
            info = self._sessions.get(sid)
            if info is None:
                info = self._sessions[sid] = {"pid": os.getpid(), "started": ts, "ended": None, "status": None}
            if kind == TERMINAL:
                loaded = json.loads(data)
                info["ended"] = ts
                info["status"] = loaded.get("status", "ok") if isinstance(loaded, dict) else "ok"
            prune_due = ts - self._last_prune > max(0.05, min(60.0, self.retention / 4))
        if prune_due:
            self._last_prune = ts
            self.prune(self.retention, ts)
        self.notify(((sid, queue),))

    def sync(self) -> None:
        return None

    def _after(self, sid: str, queue: str, after: int) -> list[tuple]:
        rows = self._queues.get((sid, queue), ())
        return rows[bisect.bisect_right(rows, after, key=_seq_of):] if rows else []

    def read(self, sid: str, queues: tuple[str, ...] | None, after: int, limit: int | None) -> list[Event]:
        with self._lock:
            rows = self._log.get(sid, [])
            rows = [r for r in rows[bisect.bisect_right(rows, after, key=_seq_of):]
                    if queues is None or r[2] in queues]
        return [make_event(*r) for r in rows[:limit]]

    def take(self, sid: str, queue: str, limit: int | None) -> list[Any]:
        with self._lock:
            rows = self._after(sid, queue, self._cursors.get((sid, queue), 0))[:limit]
            if rows:
                self._cursors[(sid, queue)] = rows[-1][0]
        return [project(r[3], r[5]) for r in rows]

    def peek(self, sid: str, queue: str) -> Event | None:
        with self._lock:
            rows = self._after(sid, queue, self._cursors.get((sid, queue), 0))
        return make_event(*rows[0]) if rows else None

    def size(self, sid: str, queue: str) -> int:
        with self._lock:
            return len(self._after(sid, queue, self._cursors.get((sid, queue), 0)))

    def clear(self, sid: str, queue: str) -> None:
        with self._lock:
            rows = self._after(sid, queue, 0)
            if rows:
                self._cursors[(sid, queue)] = rows[-1][0]

    def session_info(self, sid: str) -> dict[str, Any] | None:
        with self._lock:
            info = self._sessions.get(sid)
            return None if info is None else dict(info)

    def prune(self, retention: float, now: float) -> int:
        cutoff = now - retention
        deleted = 0
        idle_cutoff = now - max(retention, self.idle_retention)
        with self._lock:
            for sid, info in list(self._sessions.items()):
                rows = self._log.get(sid)
                idle = info["ended"] is None and (not rows or rows[-1][6] < idle_cutoff)
                if idle or info["ended"] is not None and info["ended"] < cutoff:
                    deleted += len(self._log.pop(sid, ()))
                    for key in [k for k in self._queues if k[0] == sid]:
                        del self._queues[key]
                    del self._sessions[sid]
                    for key in [k for k in self._cursors if k[0] == sid]:
                        del self._cursors[key]
            for sid, rows in self._log.items():
                keep = [r for r in rows if not (r[6] < cutoff and r[0] <= self._cursors.get((sid, r[2]), 0))]
                deleted += len(rows) - len(keep)
                rows[:] = keep
            for (sid, queue), rows in self._queues.items():
                cursor = self._cursors.get((sid, queue), 0)
                rows[:] = [r for r in rows if not (r[6] < cutoff and r[0] <= cursor)]
        return deleted


def _seq_of(row: tuple) -> int:
    return row[0]
