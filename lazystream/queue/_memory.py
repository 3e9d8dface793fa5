"""The memory backend: the same semantics as SQLite, inside one process, nothing on disk.

Chosen with ``LAZYSTREAM_QUEUE=memory``. Only this process writes, so ``watch`` never
calls back and ``claim`` never meets another owner.
"""
from __future__ import annotations

import bisect
import json
import os
import socket
import threading
from collections.abc import Callable, Iterable
from typing import Any

from ..events import TERMINAL, Event
from ._backend import TOMBSTONES, Backend, Row, make_event

__all__ = ["MemoryBackend"]


class MemoryBackend(Backend):
    """Event log in process memory."""

    name = "memory"
    where = "in memory"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seq = 0
        self._log: dict[str, list[tuple]] = {}          # sid -> (seq, sid, queue, kind, ns, data, ts) rows
        self._sessions: dict[str, dict[str, Any]] = {}
        self._cursors: dict[tuple[str, str], int] = {}
        self._pruned: dict[str, tuple[float, str, float]] = {}

    def store(self, rows: list[Row], cursors: dict[tuple[str, str], int], owner: str) -> list[int]:
        with self._lock:
            first = self._seq + 1
            for row in rows:
                self._seq += 1
                sid, queue, kind, ns, data, ts = row
                self._log.setdefault(sid, []).append((self._seq, sid, queue, kind, ns, data, ts))
                info = self._sessions.get(sid)
                if info is None:
                    info = self._sessions[sid] = {"pid": os.getpid(), "host": socket.gethostname(), "started": ts,
                                                  "ended": None, "status": None, "pruned": False}
                    self._pruned.pop(sid, None)
                info["seen"] = ts
                if kind == TERMINAL:
                    loaded = json.loads(data)
                    info["ended"] = ts
                    info["status"] = loaded.get("status", "ok") if isinstance(loaded, dict) else "ok"
            self._cursors.update(cursors)
            return list(range(first, self._seq + 1))

    def read(self, sid: str, queues: tuple[str, ...] | None, after: int, limit: int | None) -> list[Event]:
        with self._lock:
            rows = self._log.get(sid, [])
            rows = [r for r in rows[bisect.bisect_right(rows, after, key=_seq_of):]
                    if queues is None or r[2] in queues][:limit]
        return [make_event(*r) for r in rows]

    def claim(self, sid: str, queue: str, owner: str) -> int:
        with self._lock:
            return self._cursors.get((sid, queue), 0)

    def release(self, cursors: dict[tuple[str, str], int], owner: str) -> None:
        with self._lock:
            self._cursors.update(cursors)

    def session_info(self, sid: str) -> dict[str, Any] | None:
        with self._lock:
            info = self._sessions.get(sid)
            if info is not None:
                return {k: info[k] for k in ("pid", "host", "started", "ended", "status", "pruned")}
            gone = self._pruned.get(sid)
            if gone is not None:
                return {"pid": None, "host": None, "started": None, "ended": gone[0], "status": gone[1], "pruned": True}
            return None

    def sessions(self, limit: int | None) -> list[dict[str, Any]]:
        with self._lock:
            newest = sorted(self._sessions.items(), key=lambda item: item[1]["started"], reverse=True)
            return [{**{k: info[k] for k in ("pid", "host", "started", "ended", "status")}, "sid": sid,
                     "events": len(self._log.get(sid, ())),
                     "last": self._log[sid][-1][6] if self._log.get(sid) else None}
                    for sid, info in newest[:limit]]

    def expire(self, retention: float, idle_retention: float, now: float) -> int:
        cutoff, idle_cutoff = now - retention, now - idle_retention
        deleted = 0
        with self._lock:
            for sid, info in list(self._sessions.items()):
                ended = info["ended"]
                if (ended is not None and ended < cutoff) or (ended is None and info["seen"] < idle_cutoff):
                    deleted += len(self._log.pop(sid, ()))
                    del self._sessions[sid]
                    for key in [k for k in self._cursors if k[0] == sid]:
                        del self._cursors[key]
                    self._pruned[sid] = (ended if ended is not None else now, info["status"] or "idle", now)
            for sid, rows in self._log.items():
                keep = [r for r in rows if not (r[6] < cutoff and r[0] <= self._cursors.get((sid, r[2]), 0))]
                deleted += len(rows) - len(keep)
                rows[:] = keep
            for sid in [s for s, gone in self._pruned.items() if gone[2] < now - max(retention, TOMBSTONES)]:
                del self._pruned[sid]
        return deleted

    def watch(self, on_change: Callable[[Iterable[str] | None], None]) -> None:
        return None   # nothing else writes here

    def shared(self) -> bool:
        return False   # nothing else reads here either


def _seq_of(row: tuple) -> int:
    return row[0]
