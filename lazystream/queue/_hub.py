"""The hub: one per process, between the front and a storage backend.

What makes the queue cheap per token lives here, once for every backend:

* **Group commit.** ``append`` puts an encoded row in a bounded list and returns; one
  writer thread stores everything pending — across all sessions of the process — in one
  ``Backend.store`` call, at most once per ``LINGER`` seconds. A lone event after a quiet
  spell is stored at once, so the linger costs latency only under load.
* **Backpressure.** At most ``MAX_PENDING`` rows wait in memory. A producer above it
  waits for the writer; after ``BACKPRESSURE_TIMEOUT`` s it gets ``StorageError``.
* **Failures are said, not swallowed.** When a store fails (a full disk), the batch stays
  pending and is retried with back-off until the store works again; meanwhile ``append``
  raises ``StorageError`` (that item was *not* taken) and ``flush`` raises after its
  timeout. Nothing whose ``append`` returned is dropped while the process lives.
* **In-process delivery.** After each store the writer hands the stored events to a
  bounded per-session cache, so readers of this process (``dequeue``, ``read_session``,
  ``tail``, ``follow``) get them without a store round trip. A session's cache is
  trusted only while no other process has stored anything since it was checked; else the
  read goes to the store.
* **Dequeue cursors in memory.** The first destructive read of ``(sid, queue)`` claims it
  for this process (``Backend.claim``, one round trip); afterwards a ``dequeue`` moves a
  cursor in memory, persisted lazily with the writer's batches (at most every
  ``CURSOR_PERSIST`` s) and at exit. An empty ``dequeue`` costs a few dict lookups.
"""
from __future__ import annotations

import atexit
import bisect
import sys
import threading
import time
import weakref
from collections.abc import Iterable
from typing import Any

from ..events import TERMINAL, Event
from ._backend import (
    Backend,
    Key,
    Row,
    StorageError,
    decode,
    decode_ns,
    encode_ns,
    owner_token,
)

__all__ = ["LINGER", "MAX_PENDING", "Hub"]

LINGER = 0.002                 # s between two stores of one process (group commit)
MAX_PENDING = 5_000           # rows waiting in memory before producers wait
BACKPRESSURE_TIMEOUT = 30.0    # s a producer waits above MAX_PENDING before StorageError
CURSOR_PERSIST = 1.0           # s between lazy writes of moved dequeue cursors
_RETRY = (0.05, 2.0)           # back-off bounds while the store fails
_MIN_WINDOW, _MAX_WINDOW = 128, 4_096   # events cached per session (fewer, the more sessions)
_MAX_CACHED = 250_000           # events cached in all, at most
_MAX_KEYS = 100_000
_IMMUTABLE = (str, int, float, bool, type(None))


class _Tail:
    """The recent stored events of one session, as this process saw them stored.

    Kept as raw records ``(seq, queue, kind, ns_json, data_json, ts, value)`` — ``value``
    the item itself when it was immutable, else ``None`` — so handing a batch over costs a
    tuple per row; readers decode only what they read, once.
    """

    __slots__ = ("ended", "epoch", "floor", "last_by_queue", "recs", "seqs", "sid")

    def __init__(self, sid: str, floor: int, epoch: int) -> None:
        self.sid = sid
        self.recs: list[tuple] = []
        self.seqs: list[int] = []
        self.floor = floor          # every event of the session with seq > floor is here
        self.epoch = epoch          # the external epoch up to which that was checked
        self.last_by_queue: dict[str, int] = {}
        self.ended = False

    def add(self, rec: tuple) -> None:
        seq = rec[0]
        if self.seqs and seq <= self.seqs[-1]:
            i = bisect.bisect_left(self.seqs, seq)
            if i < len(self.seqs) and self.seqs[i] == seq:
                return
            self.seqs.insert(i, seq)
            self.recs.insert(i, rec)
        else:
            self.seqs.append(seq)
            self.recs.append(rec)
        if seq > self.last_by_queue.get(rec[1], 0):
            self.last_by_queue[rec[1]] = seq
        if rec[2] == TERMINAL:
            self.ended = True

    def trim(self, keep: int) -> int:
        """Drop the oldest events beyond ``keep``; return how many were dropped."""
        extra = len(self.recs) - keep
        if extra <= 0:
            return 0
        self.floor = self.seqs[extra - 1]
        del self.recs[:extra], self.seqs[:extra]
        return extra

    def after(self, after: int, queues: tuple[str, ...] | None, limit: int | None) -> list[tuple]:
        i = bisect.bisect_right(self.seqs, after)
        if queues is None:
            return self.recs[i:] if limit is None else self.recs[i:i + limit]
        out = []
        for rec in self.recs[i:]:
            if rec[1] in queues:
                out.append(rec)
                if limit is not None and len(out) >= limit:
                    break
        return out

    def event(self, rec: tuple) -> Event:
        return Event(rec[0], self.sid, rec[1], rec[2], decode_ns(rec[3]), _value(rec), rec[5])


def _rec_of(event: Event) -> tuple:
    """A cache record for an event read from the store (already decoded: keep the data)."""
    data = event.data
    return (event.seq, event.queue, event.kind, encode_ns(event.ns), None, event.ts,
            data if type(data) in _IMMUTABLE and data is not None else _Decoded(data))


class _Decoded:
    """Marks data already decoded (it may be ``None`` or mutable)."""

    __slots__ = ("data",)

    def __init__(self, data: Any) -> None:
        self.data = data


def _settle(future: Any) -> None:
    if not future.done():
        future.set_result(None)


def _settle_all(futures: list[Any]) -> None:
    for future in futures:
        if not future.done():
            future.set_result(None)


def _wake_futures(futures: list[Any]) -> None:
    """Resolve coroutines' futures on their own loops: one thread-safe call per loop."""
    by_loop: dict[Any, list[Any]] = {}
    for future in futures:
        by_loop.setdefault(future.get_loop(), []).append(future)
    for loop, group in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle_all, group)
        except RuntimeError:   # that loop is closed: nobody waits any more
            pass


def _project(kind: str, data: Any) -> Any:
    """The seed projection: a trace is read as its text."""
    return data["text"] if kind == "trace" and type(data) is dict and "text" in data else data


def _value(rec: tuple) -> Any:
    value = rec[6]
    if value is None:
        return decode(rec[4])
    if type(value) is _Decoded:
        return value.data
    return value


class _Cursor:
    __slots__ = ("lock", "pos")

    def __init__(self, pos: int) -> None:
        self.pos = pos
        self.lock = threading.Lock()


class Hub:
    """Group commit, in-process delivery and dequeue cursors over one ``Backend``."""

    def __init__(self, backend: Backend, *, retention: float = 3600.0, idle_retention: float = 86400.0,
                 linger: float = LINGER, max_pending: int = MAX_PENDING) -> None:
        self.backend = backend
        self.retention = retention
        self.idle_retention = idle_retention
        self.linger = linger
        self.max_pending = max_pending
        self.owner = owner_token()
        # writing
        self._io = threading.Lock()
        self._work = threading.Condition(self._io)
        self._done = threading.Condition(self._io)
        self._pending: list[Row] = []
        self._values: list[Any] = []         # the item itself when immutable (no decode), else None
        self._appended = 0
        self._stored = 0
        self._failure: BaseException | None = None   # set while stores fail
        self._storing = False                  # a batch is being stored (by the writer or a producer)
        self._writer: threading.Thread | None = None
        self._closed = False
        self._last_store = 0.0
        self._last_expire = time.time()
        self._sid_upto: dict[str, int] = {}   # sid -> rows appended up to its latest
        self._cleared_at = 0
        # reading
        self._mem = threading.Lock()          # caches and cursors
        self._handover = threading.Lock()     # a store and its handover to the caches
        self._tails: dict[str, _Tail] = {}
        self._cached = 0
        self._epoch = 0                       # bumped when another process stored something
        self._cursors: dict[tuple[str, str], _Cursor] = {}
        self._dirty: dict[tuple[str, str], int] = {}
        self._last_persist = 0.0
        # waiting
        self._wait_lock = threading.Lock()
        self._global = 0
        self._key_generation: dict[Key, int] = {}
        self._waiting: dict[Key, list] = {}
        self._watching = False
        self._watch_lock = threading.Lock()
        self._async_waiting: dict[Key, list[Any]] = {}   # key -> asyncio futures of coroutines
        ref = weakref.ref(self)
        atexit.register(lambda: None if (h := ref()) is None else h.close())

    # --- writing ------------------------------------------------------------------------
    def append(self, row: Row, value: Any = None) -> None:
        """Take one encoded row for storing; ``value`` is the item when immutable."""
        with self._io:
            if self._failure is not None:
                raise StorageError(
                    f"{self._where()}: storing fails ({self._failure}); this item was NOT taken; "
                    f"{len(self._pending)} taken earlier wait in memory and are retried until the store "
                    "works again (flush() waits for them)") from self._failure
            if self._closed:   # after close (late atexit work): store it here and now
                direct = True
            elif not self._pending and not self._storing and self._writer is not None \
                    and time.monotonic() - self._last_store >= self.linger:
                # A lone event after a quiet spell: store it on this thread, which saves
                # the writer thread's wake-up (and its CPU) at a model's pace.
                direct = self._storing = True
            else:
                direct = False
                if len(self._pending) >= self.max_pending:
                    self._wait_for_room()
            self._pending.append(row)
            self._values.append(value)
            self._appended += 1
            upto = self._sid_upto
            if len(upto) >= _MAX_KEYS:
                upto.clear()
                self._cleared_at = self._appended
            upto[row[0]] = self._appended
            if direct:
                batch, values = self._pending, self._values
                self._pending, self._values = [], []
            elif self._writer is None:
                self._writer = threading.Thread(target=self._write_loop, name="lazystream-writer", daemon=True)
                self._writer.start()
            elif len(self._pending) == 1:
                self._work.notify()
        if direct and not self._store(batch, values, {}) and self._closed:
            raise StorageError(f"{self._where()}: storing failed: {self._failure}") from self._failure

    def _wait_for_room(self) -> None:
        deadline = time.monotonic() + BACKPRESSURE_TIMEOUT
        while len(self._pending) >= self.max_pending and self._failure is None and not self._closed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise StorageError(
                    f"{self._where()}: {len(self._pending)} events wait to be stored (the bound is "
                    f"{self.max_pending}) and the store has not caught up for {BACKPRESSURE_TIMEOUT:g} s; "
                    "this item was NOT taken; write less often or to a faster store")
            self._done.wait(min(remaining, 1.0))
        if self._failure is not None:
            raise StorageError(f"{self._where()}: storing fails ({self._failure}); this item was NOT taken") \
                from self._failure

    def sync(self, sid: str | None = None) -> None:
        """Wait until what this process appended to ``sid`` so far is stored, so a reader
        sees every write that happened before its read (and never waits for other
        sessions' rows). Returns early while the store fails: readers go on reading what
        was stored. ``sid=None``: everything appended so far.
        """
        upto = self._appended if sid is None else self._sid_upto.get(sid, self._cleared_at)
        if upto <= self._stored:
            return
        with self._io:
            while self._stored < upto and self._failure is None and self._writer is not None:
                self._done.wait(1.0)

    def flush(self, timeout: float | None = None) -> None:
        """Block until every event this process appended before the call is stored.

        Raises ``StorageError`` if storing fails and ``timeout`` passes (the events stay
        pending and are retried), ``TimeoutError`` if it is merely slow.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._io:
            target = self._appended
            while self._stored < target:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    if self._failure is not None:
                        raise StorageError(
                            f"{self._where()}: flush: {target - self._stored} events are not stored: "
                            f"{self._failure}; they stay in memory and are retried") from self._failure
                    raise TimeoutError(f"flush: {target - self._stored} events not stored within {timeout} s")
                self._done.wait(1.0 if remaining is None else min(remaining, 1.0))

    def _write_loop(self) -> None:
        delay = 0.0
        while True:
            with self._io:
                while (not self._pending or self._storing) and not self._closed:
                    timeout = self._idle_timeout()
                    if not self._work.wait(timeout) and not self._pending:
                        break   # time for the periodic chores
                closing = self._closed
            if self._pending and not closing:
                # Linger: at most one store per LINGER, so under load the next batch gathers
                # rows of every session while this one is stored.
                wait = self._last_store + self.linger - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
            with self._io:
                while self._storing:   # a producer is storing a lone event: keep the order
                    self._done.wait(1.0)
                batch, values = self._pending, self._values
                self._pending, self._values = [], []
                self._storing = True
            now = time.monotonic()
            cursors = self._take_dirty(now, force=closing) if batch or closing or \
                now - self._last_persist >= CURSOR_PERSIST else {}
            if not batch and not cursors:
                with self._io:
                    self._storing = False
                    if self._pending:
                        self._work.notify()
            else:
                if not self._store(batch, values, cursors):
                    delay = min(_RETRY[1], max(_RETRY[0], delay * 2))
                    time.sleep(delay)
                    continue
                delay = 0.0
            with self._io:
                if self._closed and not self._pending:
                    return
            self._maybe_expire()

    def _idle_timeout(self) -> float:
        chores = max(0.05, min(60.0, self.retention / 4))
        return min(chores, CURSOR_PERSIST) if self._dirty else chores

    def _take_dirty(self, now: float, force: bool) -> dict[tuple[str, str], int]:
        if not self._dirty or not (force or now - self._last_persist >= CURSOR_PERSIST):
            return {}
        with self._mem:
            dirty, self._dirty = self._dirty, {}
        self._last_persist = now
        return dirty

    def _store(self, batch: list[Row], values: list[Any], cursors: dict[tuple[str, str], int]) -> bool:
        """Store one batch; on failure put it back in front and return False."""
        self._last_store = time.monotonic()
        try:
            with self._handover:
                seqs = self.backend.store(batch, cursors, self.owner)
                keys = self._hand_over(batch, values, seqs)
        except BaseException as e:  # noqa: BLE001 - kept, retried, and said to producers
            with self._io:
                self._pending[:0] = batch
                self._values[:0] = values
                self._failure = e
                self._storing = False
                self._done.notify_all()
                self._work.notify()
            with self._mem:
                for key, pos in cursors.items():
                    self._dirty.setdefault(key, pos)
            self.notify()
            return False
        with self._io:
            self._stored += len(batch)
            self._failure = None
            self._storing = False
            self._done.notify_all()
            if self._pending:
                self._work.notify()
        if keys:
            self.notify(keys)
        return True

    def _hand_over(self, batch: list[Row], values: list[Any], seqs: list[int]) -> set[Key]:
        """Put stored events in the caches; return the keys to wake."""
        keys: set[Key] = set()
        with self._mem:
            tails, epoch = self._tails, self._epoch
            for row, value, seq in zip(batch, values, seqs):
                sid, queue, kind, ns, data, ts = row
                tail = tails.get(sid)
                if tail is None:
                    tail = tails[sid] = _Tail(sid, seq - 1, epoch)
                tail.add((seq, queue, kind, ns, data, ts, value))
                keys.add((sid, queue))
            self._cached += len(batch)
            if self._cached > _MAX_CACHED or len(tails) * 8 > _MAX_CACHED:
                self._shrink()
            else:
                window = max(_MIN_WINDOW, min(_MAX_WINDOW, _MAX_CACHED // (2 * len(tails))))
                for sid, _ in keys:
                    tail = tails[sid]
                    if len(tail.recs) > window:
                        self._cached -= tail.trim(window // 2)
        return keys

    def _shrink(self) -> None:
        """Bound the caches: drop ended sessions first, then the oldest, then trim all."""
        tails = self._tails
        for sid in [s for s, t in tails.items() if t.ended][: max(1, len(tails) // 2)]:
            self._cached -= len(tails.pop(sid).recs)
        while len(tails) * 8 > _MAX_CACHED:
            self._cached -= len(tails.pop(next(iter(tails))).recs)
        if self._cached > _MAX_CACHED // 2 and tails:
            keep = max(8, _MAX_CACHED // (2 * len(tails)))
            for tail in tails.values():
                self._cached -= tail.trim(keep)

    def _maybe_expire(self) -> None:
        now = time.time()
        if now - self._last_expire < max(0.05, min(60.0, self.retention / 4)):
            return
        self._last_expire = now
        try:
            self.expire(self.retention, now)
        except StorageError as e:
            print(f"lazystream: expiring old sessions failed: {e}", file=sys.stderr)

    def expire(self, retention: float, now: float) -> int:
        """Delete what retention says is old (see ``Backend.expire``); return events deleted."""
        dirty = self._take_dirty(time.monotonic(), force=True)
        if dirty:   # what readers consumed counts as consumed: persist it first
            try:
                self.backend.store([], dirty, self.owner)
            except BaseException:
                with self._mem:
                    for key, pos in dirty.items():
                        self._dirty.setdefault(key, pos)
                raise
        deleted = self.backend.expire(retention, max(retention, self.idle_retention), now)
        if deleted:
            with self._mem:   # the caches may hold what was deleted: read the store until refilled
                self._tails.clear()
                self._cached = 0
        return deleted

    # --- reading ------------------------------------------------------------------------
    def _fresh_tail(self, sid: str, after: int) -> _Tail | None:
        """Return the session's cache if it holds every event after ``after``."""
        self._start_watching()   # a cache is only as fresh as what this process hears
        tail = self._tails.get(sid)
        if tail is None:
            return self._populate(sid, after)
        if after < tail.floor:
            return None
        if tail.epoch != self._epoch:
            # Another process stored something since: merge what it stored for this sid.
            with self._handover:
                epoch = self._epoch
                try:
                    stored = self.backend.read(sid, None, tail.seqs[-1] if tail.seqs else tail.floor, None)
                except StorageError:
                    return None
                with self._mem:
                    if self._tails.get(sid) is not tail:
                        return None
                    for event in stored:
                        tail.add(_rec_of(event))
                    self._cached += len(stored)
                    tail.epoch = epoch
        return tail

    def _populate(self, sid: str, after: int) -> _Tail | None:
        """Start caching a session this process has not seen stored: read what the store
        holds after ``after`` once; from then on this process's stores are handed over
        and other processes' stores move the epoch. A polling reader waiting for a
        session's first event then costs no store round trip per poll."""
        with self._handover:   # no store of ours between the read and the cache
            epoch = self._epoch
            try:
                stored = self.backend.read(sid, None, after, _MIN_WINDOW + 1)
            except StorageError:
                return None
            if len(stored) > _MIN_WINDOW:
                return None   # a long backlog: let the reader page through the store
            with self._mem:
                tail = self._tails.get(sid)
                if tail is None:
                    tail = self._tails[sid] = _Tail(sid, after, epoch)
                    for event in stored:
                        tail.add(_rec_of(event))
                    self._cached += len(stored)
        return tail if tail.epoch == self._epoch else self._fresh_tail(sid, after)

    def read(self, sid: str, queues: tuple[str, ...] | None, after: int, limit: int | None) -> list[Event]:
        """Stored events of ``sid`` with ``seq > after``, from the cache when it can."""
        self.sync(sid)
        tail = self._fresh_tail(sid, after)
        if tail is not None:
            with self._mem:
                if after >= tail.floor:
                    recs = tail.after(after, queues, limit)
                    return [tail.event(rec) for rec in recs]
        return self.backend.read(sid, queues, after, limit)

    def _read_values(self, sid: str, queue: str, after: int, limit: int | None) -> tuple[int, list[Any]]:
        """``(last seq, seed projections)`` of the queue's events after ``after``."""
        tail = self._fresh_tail(sid, after)
        if tail is not None:
            with self._mem:
                if after >= tail.floor:
                    recs = tail.after(after, (queue,), limit)
                    if not recs:
                        return after, []
                    return recs[-1][0], [_project(rec[2], _value(rec)) for rec in recs]
        events = self.backend.read(sid, (queue,), after, limit)
        if not events:
            return after, []
        return events[-1].seq, [_project(e.kind, e.data) for e in events]

    def _cursor(self, sid: str, queue: str) -> _Cursor:
        key = (sid, queue)
        cursor = self._cursors.get(key)
        if cursor is None:
            pos = self.backend.claim(sid, queue, self.owner)
            with self._mem:
                cursor = self._cursors.get(key)
                if cursor is None:
                    if len(self._cursors) >= _MAX_KEYS:
                        self._release_some()
                    cursor = self._cursors[key] = _Cursor(pos)
        return cursor

    def _release_some(self) -> None:
        """Give back the oldest half of the claimed cursors (bounded memory)."""
        old = list(self._cursors)[: len(self._cursors) // 2]
        release = {key: self._cursors.pop(key).pos for key in old}
        for key in old:
            self._dirty.pop(key, None)
        try:
            self.backend.release(release, self.owner)
        except StorageError:
            pass

    def take(self, sid: str, queue: str, limit: int | None, *, sync: bool = True) -> list[Any]:
        """Return the items after this process's cursor of the queue and move it past them.

        ``sync=False``: do not wait for this process's unstored writes (a coroutine waits
        for their store's notification instead of blocking its loop)."""
        if sync:
            self.sync(sid)
        cursor = self._cursor(sid, queue)
        tail = self._tails.get(sid)
        if tail is not None and tail.epoch == self._epoch and cursor.pos >= tail.floor \
                and tail.last_by_queue.get(queue, 0) <= cursor.pos:
            return []   # the seed's polling loop: nothing new, no lock, no store
        with cursor.lock:
            last, values = self._read_values(sid, queue, cursor.pos, limit)
            if not values:
                return []
            cursor.pos = last
            with self._mem:
                self._dirty[(sid, queue)] = last
        return values

    def _pending_items(self, sid: str, queue: str, limit: int | None) -> list[Event]:
        return self.read(sid, (queue,), self._cursor(sid, queue).pos, limit)

    def peek(self, sid: str, queue: str) -> Event | None:
        events = self._pending_items(sid, queue, 1)
        return events[0] if events else None

    def size(self, sid: str, queue: str) -> int:
        cursor = self._cursor(sid, queue)
        tail = self._tails.get(sid)
        if tail is not None and tail.epoch == self._epoch and cursor.pos >= tail.floor \
                and tail.last_by_queue.get(queue, 0) <= cursor.pos and self._sid_upto.get(sid, self._cleared_at) <= self._stored:
            return 0
        return len(self._pending_items(sid, queue, None))

    def clear(self, sid: str, queue: str) -> None:
        cursor = self._cursor(sid, queue)
        with cursor.lock:
            events = self.read(sid, (queue,), cursor.pos, None)
            if events:
                cursor.pos = events[-1].seq
                with self._mem:
                    self._dirty[(sid, queue)] = cursor.pos

    def session_info(self, sid: str) -> dict[str, Any] | None:
        self.sync(sid)
        return self.backend.session_info(sid)

    def sessions(self, limit: int | None) -> list[dict[str, Any]]:
        self.flush()
        return self.backend.sessions(limit)

    # --- waiting ------------------------------------------------------------------------
    # Readers wait on a key: (sid, queue), or (sid, None) for a whole session. A store wakes
    # only the readers of the keys it touched, so many sessions at once do not all wake on
    # every store. The global generation wakes everyone (other processes' stores, futures).

    def generation(self, key: Key) -> tuple[int, int]:
        """Return a token that changes whenever something may have been stored under ``key``."""
        return self._global, self._key_generation.get(key, 0)

    def notify(self, keys: Iterable[Key] | None = None) -> None:
        """Wake the readers of ``keys`` (and of their whole sessions), or every reader."""
        woken: list[Any] = []
        with self._wait_lock:
            if keys is None or len(self._key_generation) > _MAX_KEYS:
                if keys is not None:
                    self._key_generation.clear()   # bounded memory; the global bump covers it
                self._global += 1
                for cond, _ in self._waiting.values():
                    cond.notify_all()
                for futures in self._async_waiting.values():
                    woken += futures
                self._async_waiting.clear()
            else:
                gens, waiting, async_waiting = self._key_generation, self._waiting, self._async_waiting
                for sid, queue in keys:
                    for key in ((sid, queue), (sid, None)):
                        gens[key] = gens.get(key, 0) + 1
                        entry = waiting.get(key)
                        if entry is not None:
                            entry[0].notify_all()
                        if async_waiting:
                            futures = async_waiting.pop(key, [])
                            if futures:
                                woken += futures
        if woken:
            _wake_futures(woken)

    def _external(self, sids: Iterable[str] | None) -> None:
        """Another process stored something: distrust the caches, wake the readers."""
        with self._mem:
            self._epoch += 1
        if sids is None:
            self.notify()
            return
        # The other process did not say which queues: wake the readers of every queue of
        # those sessions, not only those waiting on a whole session.
        wanted = set(sids)
        with self._wait_lock:
            keys = [key for key in self._waiting if key[0] in wanted]
        self.notify(keys + [(sid, None) for sid in wanted])

    def _start_watching(self) -> bool:
        """Hear other processes' stores from now on; True if this call started it.

        Until then nothing tells this process that another one stored something, so no
        cache may be trusted: starting moves the epoch, and every cache re-reads once."""
        if self._watching:
            return False
        with self._watch_lock:
            if self._watching:
                return False
            self.backend.watch(self._external)
            self._watching = True
        self._external(None)
        return True

    def wait(self, token: tuple[int, int], timeout: float | None, key: Key) -> None:
        """Block until ``generation(key)`` moves past ``token`` or ``timeout`` passes."""
        if self._start_watching():
            return   # one may have landed unannounced: the caller re-checks before blocking
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._wait_lock:
            entry = self._waiting.get(key)
            if entry is None:
                entry = self._waiting[key] = [threading.Condition(self._wait_lock), 0]
            entry[1] += 1
            try:
                while (self._global, self._key_generation.get(key, 0)) == token:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        break
                    entry[0].wait(remaining)
            finally:
                entry[1] -= 1
                if entry[1] == 0:
                    del self._waiting[key]

    async def wait_async(self, token: tuple[int, int], timeout: float | None, key: Key) -> None:
        """``wait`` for coroutines: suspend (never block the loop) until ``generation(key)``
        moves past ``token`` or ``timeout`` passes. The writer thread resolves the
        awaited future through the loop's ``call_soon_threadsafe``, once per loop per store."""
        import asyncio  # loaded by the caller already; a local import keeps ``import lazystream`` light
        if not self._watching:
            self.wait(token, 0, key)   # start listening to other processes; the caller re-checks
            return
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        with self._wait_lock:
            if (self._global, self._key_generation.get(key, 0)) != token:
                return
            self._async_waiting.setdefault(key, []).append(future)
        timer = None if timeout is None else loop.call_later(timeout, _settle, future)
        try:
            await future
        finally:
            if timer is not None:
                timer.cancel()
            if not future.done():
                future.cancel()
            with self._wait_lock:
                futures = self._async_waiting.get(key)
                if futures and future in futures:
                    futures.remove(future)
                    if not futures:
                        del self._async_waiting[key]

    def synced(self, sid: str) -> bool:
        """Return True when what this process appended to ``sid`` is stored."""
        return self._sid_upto.get(sid, self._cleared_at) <= self._stored

    # --- the end ------------------------------------------------------------------------
    def _where(self) -> str:
        return f"queue store {self.backend.where}"

    def close(self) -> None:
        """Store what is pending, give back the dequeue cursors, close the backend."""
        with self._io:
            if self._closed:
                return
            self._closed = True
            self._work.notify()
        writer = self._writer
        if writer is not None and writer is not threading.current_thread():
            writer.join(timeout=10)
        if self._pending:
            print(f"lazystream: {len(self._pending)} events could not be stored before exit "
                  f"({self._failure or 'the store is too slow'})", file=sys.stderr)
        with self._mem:
            cursors = {key: c.pos for key, c in self._cursors.items()}
            self._cursors.clear()
            self._dirty.clear()
        try:
            if cursors:
                self.backend.release(cursors, self.owner)
        except StorageError:
            pass
        finally:
            self.backend.close()
