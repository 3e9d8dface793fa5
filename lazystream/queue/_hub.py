"""The hub: one per process, between the front and a storage backend.

What makes the queue cheap per token lives here, once for every backend:

* **Group commit.** ``append`` puts an encoded row in a bounded list and returns. The
  process's pending rows of all sessions are stored together, in one ``Backend.store``
  call, once the oldest has waited ``LINGER`` (2 ms) while another
  process may read the store (``Backend.shared``), ``LINGER_ALONE`` (50 ms) while only
  this one reads. A producer stores a due batch on its own thread at its next row (it
  is awake anyway); the writer thread stores what a producer that went quiet left. A
  lone event after a quiet spell that some reader waits for is stored at once.
* **Backpressure.** At most ``MAX_PENDING`` rows wait in memory. A producer above it
  waits for the writer; after ``BACKPRESSURE_TIMEOUT`` s it gets ``StorageError``.
* **Failures are said, not swallowed.** When a store fails (a full disk), the batch stays
  pending and is retried with back-off until the store works again; meanwhile ``append``
  raises ``StorageError`` (that item was *not* taken) and ``flush`` raises after its
  timeout. Nothing whose ``append`` returned is dropped while the process lives.
* **In-process delivery.** Destructive readers of this process (``take``) and
  ``read_live`` readers get a row the moment it is appended, before it is stored
  (``_pend``); a store moves it into a bounded per-session cache, in the same step as it
  moves the dequeue cursors past what was taken early, so nothing is handed out twice.
  Readers of *stored* events (``read``: ``tail``, ``read_session``) read that cache
  without a store round trip, and when they wait on a session they make its pending rows
  be stored at once. A session's cache is trusted only while no other process has stored
  anything since it was checked; else the read goes to the store.
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
from _thread import allocate_lock as _allocate_lock
from asyncio.events import _get_running_loop as _running_loop
from collections.abc import Iterable
from operator import itemgetter
from typing import Any

from ..events import TERMINAL, Event
from ._backend import (
    Announced,
    Backend,
    Key,
    Row,
    StorageError,
    decode,
    decode_ns,
    encode_ns,
    owner_token,
)
from ._timeouts import add_timeout

__all__ = ["ANY", "LINGER", "LINGER_ALONE", "MAX_PENDING", "Hub"]

LINGER = 0.002                 # s between two stores while another process may read (group commit)
LINGER_ALONE = 0.05            # s between two stores while only this process reads
MAX_PENDING = 5_000           # rows waiting in memory before producers wait
BACKPRESSURE_TIMEOUT = 30.0    # s a producer waits above MAX_PENDING before StorageError
CURSOR_PERSIST = 1.0           # s between lazy writes of moved dequeue cursors
_TICKING = 1.0                 # s after the last row during which the writer ticks, unwoken
_RETRY = (0.05, 2.0)           # back-off bounds while the store fails
_MIN_WINDOW, _MAX_WINDOW = 128, 4_096   # events cached per session (fewer, the more sessions)
_MAX_CACHED = 250_000           # events cached in all, at most
_MAX_KEYS = 100_000
_IMMUTABLE = (str, int, float, bool, type(None))
# The queue part of a key that a destructive reader of several queues of a session waits
# on (``follow``, the seed's loop): woken by what is appended to any of them. A queue name
# never holds NUL, so it cannot collide.
ANY = "\0any"
# The queue part of the key moved when another process stored in a session without
# saying which queues: it is part of every token of that session, so a reader between
# its check and its wait cannot miss such a store.
_ELSEWHERE = "\0elsewhere"


class _Tail:
    """The recent stored events of one session, as this process saw them stored.

    Kept as raw records ``(seq, queue, kind, ns_json, data_json, ts, value, number)`` —
    ``value`` the item itself when it was immutable, else ``None``; ``number`` the row's
    append number when this process wrote it, else 0 — so readers decode only what they
    read, once. Rows appended here and not stored yet are the same records with seq 0, in
    ``Hub._pend``; the store that caches them makes each a copy with its seq.
    """

    __slots__ = ("ended", "epoch", "floor", "known", "last_by_queue", "marks", "recs", "seqs", "sid")

    def __init__(self, sid: str, floor: int, epoch: int) -> None:
        self.sid = sid
        self.recs: list[tuple] = []
        self.seqs: list[int] = []
        self.floor = floor          # every event of the session with seq > floor is here
        self.epoch = epoch          # the external epoch up to which that was checked (-1: distrusted)
        # The store was read up to here: other processes' events above it may be missing
        # even below this process's own newest (several writers of one session).
        self.known = floor
        self.marks = 0              # times a refresh of this session failed (see Hub._external)
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

    def extend(self, recs: list[tuple]) -> None:
        """Add records in seq order: this process's of one store, or those another
        process's store announced."""
        if self.seqs and recs[0][0] <= self.seqs[-1]:   # (interleaved with cached ones: one by one)
            for rec in recs:
                self.add(rec)
            return
        last_by_queue = self.last_by_queue
        for rec in recs:   # (seqs grow: the last one of a queue wins)
            last_by_queue[rec[1]] = rec[0]
            if rec[2] == TERMINAL:
                self.ended = True
        self.recs += recs
        self.seqs += [rec[0] for rec in recs]

    def trim(self, keep: int) -> int:
        """Drop the oldest events beyond ``keep``; return how many were dropped."""
        extra = len(self.recs) - keep
        if extra <= 0:
            return 0
        self.floor = self.seqs[extra - 1]
        self.known = max(self.known, self.floor)
        del self.recs[:extra], self.seqs[:extra]
        return extra

    def after(self, after: int, queues: tuple[str, ...] | None, limit: int | None) -> list[tuple]:
        i = bisect.bisect_right(self.seqs, after)
        if queues is None or len(queues) == 1 and len(self.last_by_queue) == 1 and queues[0] in self.last_by_queue:
            # (every cached event is of that one queue: no filter)
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
            data if type(data) in _IMMUTABLE and data is not None else _Decoded(data), 0)


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
    """Resolve coroutines' futures on their own loops: directly on the loop running in
    this thread (a producer coroutine), else one thread-safe call per loop."""
    by_loop: dict[Any, list[Any]] = {}
    for future in futures:
        by_loop.setdefault(future.get_loop(), []).append(future)
    here = _running_loop()
    for loop, group in by_loop.items():
        if loop is here:
            _settle_all(group)
            continue
        try:
            loop.call_soon_threadsafe(_settle_all, group)
        except RuntimeError:   # that loop is closed: nobody waits any more
            pass


def _wake(released: list[Any], woken: list[Any]) -> None:
    """Wake the waiters ``Hub._bump_held`` took: release blocked readers' locks, resolve
    coroutines' futures."""
    for lock in released:
        lock.release()
    if woken:
        _wake_futures(woken)


def _number(rec: tuple) -> int:
    return rec[7]


_seq_of = itemgetter(0)


def _first_after(pend: list[tuple], number: int) -> int:
    """The index in ``pend`` (records in append order) of the first one appended after
    append number ``number``. Numbers grow by at least one a record, so the answer is at
    least ``len - (newest - number)``: a reader that keeps up costs one probe, not a
    bisection of everything pending."""
    newest = pend[-1][7] if pend else 0
    if newest <= number:
        return len(pend)
    lo = max(0, len(pend) - (newest - number))
    return lo if pend[lo][7] > number else bisect.bisect_right(pend, number, lo + 1, key=_number)


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
    """A dequeue position: past every stored event up to ``pos`` (a seq) and past this
    process's rows up to append number ``number``, taken before they were stored."""

    __slots__ = ("lock", "number", "pos")

    def __init__(self, pos: int) -> None:
        self.pos = pos
        self.number = 0
        self.lock = threading.Lock()


class Hub:
    """Group commit, in-process delivery and dequeue cursors over one ``Backend``."""

    def __init__(self, backend: Backend, *, retention: float = 3600.0, idle_retention: float = 86400.0,
                 linger: float = LINGER, linger_alone: float = LINGER_ALONE,
                 max_pending: int = MAX_PENDING) -> None:
        self.backend = backend
        self.retention = retention
        self.idle_retention = idle_retention
        self.linger = linger
        self.linger_alone = max(linger, linger_alone)
        self.max_pending = max_pending
        self.owner = owner_token()
        # writing, and waiting: an append moves its keys' generations and takes their
        # waiters in the critical section that queues the row (one lock per row)
        self._io = threading.Lock()
        self._work = threading.Condition(self._io)
        self._done = threading.Condition(self._io)
        self._pending: list[Row] = []
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
        self._urgent = False                   # someone waits for a store (sync, flush): at once
        self._hurry = False                    # a tail here waits on a pending row: LINGER, not LINGER_ALONE
        self._shared_now = True                # another process may read (Backend.shared)
        self._idle = False                     # the writer sleeps until a row wakes it
        self._first_pending = 0.0              # when the oldest pending row was appended
        self._last_append = 0.0
        # reading
        self._mem = threading.Lock()          # caches and cursors
        self._handover = threading.Lock()     # a store and its handover to the caches
        self._tails: dict[str, _Tail] = {}
        # sid -> this process's records appended and not stored yet, in order (seq 0):
        # destructive readers of this process take them before they are stored.
        self._pend: dict[str, list[tuple]] = {}
        self._cached = 0
        self._epoch = 0                       # bumped when another process stored, who knows what
        self._marking: dict[str, int] = {}    # sid being populated -> other processes' stores meanwhile
        self._cursors: dict[tuple[str, str], _Cursor] = {}
        self._dirty: dict[tuple[str, str], int] = {}
        self._last_persist = 0.0
        # waiting
        self._global = 0
        self._key_generation: dict[Key, int] = {}
        self._waiting: dict[Key, list[Any]] = {}   # key -> locks of blocked readers, held until woken
        self._watching = False
        self._watch_lock = threading.Lock()
        self._async_waiting: dict[Key, list[Any]] = {}   # key -> asyncio futures of coroutines
        ref = weakref.ref(self)
        atexit.register(lambda: None if (h := ref()) is None else h.close())

    # --- writing ------------------------------------------------------------------------
    def append(self, row: Row, value: Any = None) -> None:
        """Take one encoded row for storing; ``value`` is the item when immutable.

        Destructive readers of this process can take it at once; it is stored with the
        next batch (see ``LINGER``)."""
        sid, queue = row[0], row[1]
        with self._io:
            if self._failure is not None:
                raise StorageError(
                    f"{self._where()}: storing fails ({self._failure}); this item was NOT taken; "
                    f"{len(self._pending)} taken earlier wait in memory and are retried until the store "
                    "works again (flush() waits for them)") from self._failure
            # A reader here waits for this session's *stored* events (a tail): store without
            # lingering. Another process may read (shared): store a lone event at once.
            stored_key = (sid, None)
            waited = stored_key in self._waiting or stored_key in self._async_waiting
            lone = waited or self._shared_now
            now = time.monotonic()
            if self._closed:   # after close (late atexit work): store it here and now
                direct = True
            elif not self._storing and self._writer is not None and (
                    (self._pending and now - self._first_pending >= self._linger_now())
                    or (lone and not self._pending and now - self._last_store >= self.linger)) \
                    and _running_loop() is None:
                # The batch has lingered long enough, or a lone event after a quiet spell
                # that a reader waits for: store it on this thread, which is awake anyway.
                # That saves the writer thread's wake-up, and its CPU, at a model's pace.
                # Never on an event loop's thread: a store would stall every coroutine.
                direct = self._storing = True
            else:
                direct = False
                if len(self._pending) >= self.max_pending:
                    self._wait_for_room()
            if not self._pending:
                self._first_pending = now
            self._last_append = now
            self._pending.append(row)
            self._appended += 1
            number = self._appended
            upto = self._sid_upto
            if len(upto) >= _MAX_KEYS:
                upto.clear()
                self._cleared_at = number
            upto[sid] = number
            with self._mem:
                pend = self._pend.get(sid)
                if pend is None:
                    pend = self._pend[sid] = []
                pend.append((0, queue, row[2], row[3], row[4], row[5], value, number))
            if direct:
                batch = self._take_batch()
            elif self._writer is None:
                self._writer = threading.Thread(target=self._write_loop, name="lazystream-writer", daemon=True)
                self._writer.start()
            elif len(self._pending) >= self.max_pending // 4:
                self._urge()   # (a quarter of the bound: long before producers must wait)
            elif waited and not self._hurry:
                self._hurry = True
                self._work.notify()   # the writer re-reckons the batch's due time
            elif self._idle:
                self._work.notify()
            # (in the same critical section: one lock per row)
            released, woken = self._bump_held(((sid, queue), (sid, ANY)))
        _wake(released, woken)
        if direct and not self._store(batch, {}) and self._closed:
            raise StorageError(f"{self._where()}: storing failed: {self._failure}") from self._failure

    def _take_batch(self) -> list[Row]:
        """Take every pending row (holding ``_io``)."""
        batch, self._pending = self._pending, []
        return batch

    def _kick(self) -> None:
        """A reader waits for what this process has not stored yet: store now."""
        with self._io:
            if self._pending:
                self._urge()

    def _urge(self) -> None:
        """Make the pending batch due at once (the caller holds ``_io``)."""
        if not self._urgent:
            self._urgent = True
            self._work.notify()

    def _wait_for_room(self) -> None:
        deadline = time.monotonic() + BACKPRESSURE_TIMEOUT
        self._urge()
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
            if self._stored < upto:
                self._urge()
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
            if self._stored < target:
                self._urge()
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
                self._await_batch()
                closing = self._closed
                while self._storing:   # a producer is storing a lone event: keep the order
                    self._done.wait(1.0)
                self._urgent = self._hurry = False
                batch = self._take_batch()
                self._storing = True
            now = time.monotonic()
            cursors = self._take_dirty(now, force=closing) if batch or closing or \
                now - self._last_persist >= CURSOR_PERSIST else {}
            if not batch and not cursors:
                with self._io:
                    self._storing = False
            else:
                if not self._store(batch, cursors):
                    delay = min(_RETRY[1], max(_RETRY[0], delay * 2))
                    time.sleep(delay)
                    continue
                delay = 0.0
            with self._io:
                if self._closed and not self._pending:
                    return
            self._maybe_expire()

    def _linger_now(self) -> float:
        return self.linger if self._shared_now or self._hurry else self.linger_alone

    def _await_batch(self) -> None:
        """Wait (holding ``_io``) until a batch is due, the process closes, or it is time
        for the periodic chores.

        A batch is due once its oldest row has waited ``LINGER`` (``LINGER_ALONE`` while
        only this process reads), at once for an urgent reader. Producers store a due
        batch themselves on their next row, being awake anyway; while only this process
        reads, the writer waits one more linger for that and stores only what a producer
        that went quiet left behind. So a steady stream costs the writer one wake-up per
        batch or less, never one per row. With nothing pending it sleeps until a row
        wakes it.
        """
        while not self._closed:
            chores = self._chores_in()
            if chores <= 0:
                return
            if self._storing:
                self._done.wait(min(1.0, chores))
            elif self._pending:
                linger = self._linger_now()
                # (while only this process reads, one linger more: producers store due
                # batches themselves, the writer only what a quiet producer left)
                due = self._first_pending + (linger if self._shared_now or self._hurry else 2 * linger)
                wait = due - time.monotonic()
                if self._urgent or wait <= 0:
                    return
                self._work.wait(min(wait, chores))
            elif not self._shared_now and time.monotonic() - self._last_append < _TICKING:
                # Rows came lately: tick instead of sleeping until woken, so a producer
                # at a model's pace never has to wake the writer.
                self._work.wait(min(2 * self._linger_now(), chores))
            else:
                self._idle = True
                try:
                    self._work.wait(chores)
                finally:
                    self._idle = False

    def _chores_in(self) -> float:
        """Seconds until the writer's periodic chores are due: retention, and persisting
        moved dequeue cursors (stores made by producers do not carry them)."""
        every = max(0.05, min(60.0, self.retention / 4))
        due = self._last_expire + every - time.time()
        if self._dirty:
            due = min(due, self._last_persist + CURSOR_PERSIST - time.monotonic())
        return due

    def _take_dirty(self, now: float, force: bool) -> dict[tuple[str, str], int]:
        if not self._dirty or not (force or now - self._last_persist >= CURSOR_PERSIST):
            return {}
        with self._mem:
            dirty, self._dirty = self._dirty, {}
        self._last_persist = now
        return dirty

    def _store(self, batch: list[Row], cursors: dict[tuple[str, str], int]) -> bool:
        """Store one batch; on failure put it back in front and return False."""
        self._last_store = time.monotonic()
        try:
            with self._handover:
                seqs = self.backend.store(batch, cursors, self.owner)
                keys = self._hand_over(batch, seqs)
        except BaseException as e:  # noqa: BLE001 - kept, retried, and said to producers
            with self._io:
                if batch:
                    self._first_pending = time.monotonic()
                self._pending[:0] = batch
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
            # From its end: a row right after a store is not "after a quiet spell", even
            # when the store took longer than a linger (else a producer writing a burst
            # stores every batch's first row alone, one more round trip each).
            self._last_store = time.monotonic()
            self._done.notify_all()
        if keys:
            self._bump(keys)
        if batch:
            self._shared_now = self.backend.shared()
        return True

    def _hand_over(self, batch: list[Row], seqs: list[int]) -> list[Key]:
        """Move stored events from ``_pend`` to the caches; return the keys to wake.

        Only readers of stored events wait on those keys, ``(sid, None)``: destructive
        readers of this process took the rows when they were appended. A dequeue cursor
        that took a row before it was stored moves past its seq here, in the same step,
        so a later read of the store cannot hand it out again.

        The batch's rows are append numbers ``first+1 … first+len(batch)``, and each
        session's share of them is the front of its ``_pend`` list: those records are
        copied with their seqs and moved a session at a time (no per-row dict work; this
        runs under ``_mem`` for every store)."""
        first = self._stored
        last, base = first + len(batch), first + 1
        cursors = self._cursors
        touched: list[str] = []
        with self._mem:
            tails, epoch, pend = self._tails, self._epoch, self._pend
            for sid, recs in list(pend.items()):
                k = len(recs) if recs[-1][7] <= last else bisect.bisect_right(recs, last, key=_number)
                if not k:
                    continue
                taken = recs[:k]
                if k == len(recs):
                    del pend[sid]
                else:
                    del recs[:k]
                # (the seq by the row's number: on Redis a batch's seqs are per session)
                chunk = [(seqs[rec[7] - base],) + rec[1:] for rec in taken]
                tail = tails.get(sid)
                if tail is None:
                    tail = tails[sid] = _Tail(sid, chunk[0][0] - 1, epoch)
                tail.extend(chunk)
                touched.append(sid)
                if cursors:
                    self._move_taken(sid, chunk, first)
            self._cached += len(batch)
            if touched:   # (else cursors only: maybe no session is cached at all)
                self._bound(touched)
        return [(sid, None) for sid in touched]

    def _bound(self, touched: list[str]) -> None:
        """Keep the caches within their bounds after ``touched`` grew (holding ``_mem``)."""
        tails = self._tails
        if self._cached > _MAX_CACHED or len(tails) * 8 > _MAX_CACHED:
            self._shrink()
            return
        window = max(_MIN_WINDOW, min(_MAX_WINDOW, _MAX_CACHED // (2 * len(tails))))
        for sid in touched:
            tail = tails[sid]
            if len(tail.recs) > window:
                self._cached -= tail.trim(window // 2)

    def _move_taken(self, sid: str, chunk: list[tuple], first: int) -> None:
        """Move the dequeue cursors of ``sid`` past the seqs of the rows of ``chunk``
        (just numbered) that they took before the store; the caller holds ``_mem``."""
        cursors, dirty = self._cursors, self._dirty
        for queue in {rec[1] for rec in chunk}:
            cursor = cursors.get((sid, queue))
            if cursor is None or cursor.number <= first:
                continue
            j = bisect.bisect_right(chunk, cursor.number, key=_number)
            while j:
                j -= 1
                rec = chunk[j]
                if rec[1] == queue:
                    if rec[0] > cursor.pos:
                        cursor.pos = dirty[(sid, queue)] = rec[0]
                    break

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
                with self._mem:
                    epoch, marks = self._epoch, tail.marks
                try:
                    stored = self.backend.read(sid, None, tail.known, None)
                except StorageError:
                    return None
                with self._mem:
                    if self._tails.get(sid) is not tail:
                        return None
                    for event in stored:
                        tail.add(_rec_of(event))
                    self._cached += len(stored)
                    if stored:
                        tail.known = max(tail.known, stored[-1].seq)
                    if tail.marks == marks:   # else a refresh failed meanwhile: read again next time
                        tail.epoch = epoch
        return tail

    def _populate(self, sid: str, after: int) -> _Tail | None:
        """Start caching a session this process has not seen stored: read what the store
        holds after ``after`` once; from then on this process's stores are handed over
        and other processes' stores move the epoch. A polling reader waiting for a
        session's first event then costs no store round trip per poll."""
        with self._handover:   # no store of ours between the read and the cache
            with self._mem:
                epoch = self._epoch
                self._marking[sid] = 0   # other processes' stores of it meanwhile count here
            try:
                stored = self.backend.read(sid, None, after, _MIN_WINDOW + 1)
            except StorageError:
                return None
            finally:
                with self._mem:
                    stored_meanwhile = self._marking.pop(sid, 0)
            if len(stored) > _MIN_WINDOW:
                return None   # a long backlog: let the reader page through the store
            with self._mem:
                tail = self._tails.get(sid)
                if tail is None:
                    # Stored meanwhile: the read may have missed it, and the refresh found no
                    # cache to fill. Distrusted, the next read merges.
                    tail = self._tails[sid] = _Tail(sid, after, -1 if stored_meanwhile else epoch)
                    for event in stored:
                        tail.add(_rec_of(event))
                    self._cached += len(stored)
                    if stored:
                        tail.known = stored[-1].seq
        return tail if tail.epoch == self._epoch else self._fresh_tail(sid, after)

    def read(self, sid: str, queues: tuple[str, ...] | None, after: int, limit: int | None, *,
             sync: bool = True) -> list[Event]:
        """Stored events of ``sid`` with ``seq > after``, from the cache when it can.

        First waits until what this process appended to ``sid`` is stored, unless
        ``sync=False`` (a coroutine waits for that on ``(sid, None)`` instead)."""
        if sync:
            self.sync(sid)
        tail = self._fresh_tail(sid, after)
        if tail is not None:
            with self._mem:
                if after >= tail.floor:
                    recs = tail.after(after, queues, limit)
                    return [tail.event(rec) for rec in recs]
        return self.backend.read(sid, queues, after, limit)

    def read_live(self, sid: str, pos: int, number: int) -> tuple[list[Event], int, int] | None:
        """Non-destructively, every event of ``sid`` past the position ``(pos, number)``:
        stored ones after seq ``pos``, then the rows this process appended and has not
        stored yet (seq 0) after append number ``number``; and the new position.

        For in-process readers that need no seq (streamify): they follow a session
        without making each row be stored first. ``None`` when the cache cannot serve
        the position (then read the store)."""
        tail = self._fresh_tail(sid, pos)
        if tail is None:
            return None
        with self._mem:
            if pos < tail.floor:
                return None
            stored = tail.after(pos, None, None)
            recs = [rec for rec in stored if not 0 < rec[7] <= number]   # not those seen unstored
            pend = self._pend.get(sid)
            if pend:
                recs += pend[_first_after(pend, number):]
        if stored:
            pos = stored[-1][0]
        if recs:
            number = max(number, max(rec[7] for rec in recs))
        return [tail.event(rec) for rec in recs], pos, number

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

    def _unread(self, sid: str, queue: str, cursor: _Cursor, limit: int | None, *,
                move: bool = False) -> list[tuple]:
        """Records of the queue after ``cursor``: stored ones, then those this process
        appended and has not stored yet, in order; with ``move``, move the cursor past
        them in the same step (no store's handover can come between). The caller holds
        ``cursor.lock``."""
        tail = self._fresh_tail(sid, cursor.pos)
        with self._mem:
            if tail is not None and cursor.pos >= tail.floor:
                recs = self._with_pending(sid, queue, cursor, tail.after(cursor.pos, (queue,), limit), limit)
                if move and recs:
                    self._move(sid, queue, cursor, recs)
                return recs
        # Far behind the cache: page through the store. Under the handover lock, so a row
        # taken before it was stored is either not in the store yet or already past pos.
        with self._handover:
            events = self.backend.read(sid, (queue,), cursor.pos, limit)
            with self._mem:
                recs = self._with_pending(sid, queue, cursor, [_rec_of(event) for event in events], limit)
                if move and recs:
                    self._move(sid, queue, cursor, recs)
        return recs

    def _with_pending(self, sid: str, queue: str, cursor: _Cursor, recs: list[tuple],
                      limit: int | None) -> list[tuple]:
        pend = self._pend.get(sid)
        if not pend or (limit is not None and len(recs) >= limit):
            return recs
        # (in append order: start after the cursor's number, not at the front)
        more = [rec for rec in pend[_first_after(pend, cursor.number):] if rec[1] == queue]
        if more:
            recs = recs + (more if limit is None else more[:limit - len(recs)])
        return recs

    def _move(self, sid: str, queue: str, cursor: _Cursor, recs: list[tuple]) -> None:
        """Move ``cursor`` past ``recs`` (stored ones by seq, appended ones by number);
        the caller holds ``_mem``."""
        pos = max(cursor.pos, max(map(_seq_of, recs)))
        cursor.number = max(cursor.number, recs[-1][7])
        if pos != cursor.pos:
            cursor.pos = self._dirty[(sid, queue)] = pos

    def _nothing_new(self, sid: str, queue: str, cursor: _Cursor) -> bool:
        """The seed's polling loop's case, without a lock: the session's cache is trusted
        and holds no stored event of the queue past the cursor, and no pending row of
        this process is past it either."""
        tail = self._tails.get(sid)
        if tail is None or tail.epoch != self._epoch or cursor.pos < tail.floor \
                or tail.last_by_queue.get(queue, 0) > cursor.pos:
            return False
        pend = self._pend.get(sid)
        return not pend or pend[-1][7] <= cursor.number

    def take(self, sid: str, queue: str, limit: int | None) -> list[Any]:
        """Return the items after this process's cursor of the queue and move it past them:
        stored items, then the ones this process appended and has not stored yet."""
        cursor = self._cursor(sid, queue)
        if self._nothing_new(sid, queue, cursor):
            return []   # no lock, no store
        with cursor.lock:
            recs = self._from_trusted(sid, queue, cursor, limit)
            if recs is None:
                recs = self._unread(sid, queue, cursor, limit, move=True)
        return [_project(rec[2], _value(rec)) for rec in recs]

    def _from_trusted(self, sid: str, queue: str, cursor: _Cursor, limit: int | None) -> list[tuple] | None:
        """A reader that keeps up: when the session's cache is trusted and reaches back
        to the cursor, take what is new from it and from this process's pending rows, and
        move the cursor past them, in one ``_mem`` step (no handover can move a row from
        pending to the cache between the two). ``None`` when the cache cannot answer
        (``_unread`` then). The caller holds ``cursor.lock``."""
        if not self._watching:
            return None   # (the cache is not trusted until this process hears others)
        with self._mem:
            tail = self._tails.get(sid)
            if tail is None or tail.epoch != self._epoch or cursor.pos < tail.floor:
                return None
            recs = tail.after(cursor.pos, (queue,), limit) if tail.last_by_queue.get(queue, 0) > cursor.pos \
                else []
            recs = self._with_pending(sid, queue, cursor, recs, limit)
            if recs:
                self._move(sid, queue, cursor, recs)
            return recs

    def peek(self, sid: str, queue: str) -> list[Any]:
        """``[the next item]`` without taking it, or ``[]``."""
        cursor = self._cursor(sid, queue)
        with cursor.lock:
            recs = self._unread(sid, queue, cursor, 1)
        return [_project(rec[2], _value(rec)) for rec in recs]

    def size(self, sid: str, queue: str) -> int:
        cursor = self._cursor(sid, queue)
        if self._nothing_new(sid, queue, cursor):
            return 0
        with cursor.lock:
            return len(self._unread(sid, queue, cursor, None))

    def clear(self, sid: str, queue: str) -> None:
        cursor = self._cursor(sid, queue)
        with cursor.lock:
            while self._unread(sid, queue, cursor, 4096, move=True):
                pass

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

    def generation(self, key: Key) -> tuple[int, int, int]:
        """Return a token that changes whenever something may have been stored under ``key``."""
        gens = self._key_generation
        return self._global, gens.get(key, 0), gens.get((key[0], _ELSEWHERE), 0)

    def notify(self, keys: Iterable[Key] | None = None) -> None:
        """Wake the readers of ``keys`` and of their whole sessions, or every reader."""
        if keys is None:
            self._bump(None)
            return
        wake: set[Key] = set()
        for sid, queue in keys:
            wake.update(((sid, queue), (sid, None), (sid, ANY)))
        self._bump(wake)

    def _bump(self, keys: Iterable[Key] | None) -> None:
        """Move the generation of exactly ``keys`` (``None``: all) and wake their readers."""
        with self._io:
            released, woken = self._bump_held(keys)
        _wake(released, woken)

    def _bump_held(self, keys: Iterable[Key] | None) -> tuple[list[Any], list[Any]]:
        """``_bump``'s part under ``_io``: move the generations and take the keys' waiters
        (the locks of blocked readers, the futures of coroutines) to wake once it is let
        go, so a woken reader does not wake only to block on it."""
        woken: list[Any] = []
        released: list[Any] = []
        if keys is None or len(self._key_generation) > _MAX_KEYS:
            if keys is not None:
                self._key_generation.clear()   # bounded memory; the global bump covers it
            self._global += 1
            for locks in self._waiting.values():
                released += locks
            self._waiting.clear()
            for futures in self._async_waiting.values():
                woken += futures
            self._async_waiting.clear()
        else:
            gens, waiting, async_waiting = self._key_generation, self._waiting, self._async_waiting
            for key in keys:
                gens[key] = gens.get(key, 0) + 1
                if waiting:
                    locks = waiting.pop(key, [])
                    if locks:
                        released += locks
                if async_waiting:
                    futures = async_waiting.pop(key, [])
                    if futures:
                        woken += futures
        return released, woken

    def _external(self, sids: Iterable[str] | None, announced: dict[str, Announced] | None = None) -> None:
        """Another process stored something (called on the backend's watch thread).

        ``sids=None`` (it is not known what): distrust every cache, wake every reader.
        Else only the named sessions: their caches are brought up to date — from
        ``announced`` where the store's announcement carried the events, else with one
        ``Backend.read_many`` for all of them — so each woken reader reads its cache, not
        the store; and only their readers are woken.
        """
        if sids is None:
            with self._mem:
                self._epoch += 1
            self.notify()
            return
        wanted = set(sids)
        with self._mem:
            for sid in wanted.intersection(self._marking):
                self._marking[sid] += 1
            tails = {sid: tail for sid in wanted if (tail := self._tails.get(sid)) is not None}
            # Announced events that follow on from what a cache read of the store: no read.
            carried = {sid: a for sid, tail in tails.items()
                       if announced and (a := announced.get(sid)) is not None and a.prev <= tail.known}
        if carried:
            self._apply(tails, carried)
        if len(carried) < len(tails):
            self._refresh({sid: tail for sid, tail in tails.items() if sid not in carried})
        # The other process did not say which queues: wake the readers of every queue of
        # those sessions, blocked or awaiting, and move the sessions' part of every token
        # (a reader about to wait then re-checks instead). That part is in every token of
        # the session, so unlike ``notify`` no key needs its session's keys moved too.
        with self._io:
            keys = [key for key in (*self._waiting, *self._async_waiting) if key[0] in wanted]
            keys += [(sid, _ELSEWHERE) for sid in wanted]
            released, woken = self._bump_held(keys)
        _wake(released, woken)

    def _apply(self, tails: dict[str, _Tail], carried: dict[str, Announced]) -> None:
        """Add announced events to the caches: each then holds every event up to the last
        announced (they follow on from what it read), so it is trusted again."""
        rows = {sid: a.rows() for sid, a in carried.items()}   # decoded outside the lock
        with self._mem:
            epoch = self._epoch
            window = max(_MIN_WINDOW, min(_MAX_WINDOW, _MAX_CACHED // (2 * max(1, len(self._tails)))))
            for sid, got in rows.items():
                tail = tails[sid]
                if self._tails.get(sid) is not tail:
                    continue
                if got and got[0][0] <= tail.known:
                    got = [row for row in got if row[0] > tail.known]
                if not got:
                    continue
                tail.extend([(*row, None, 0) for row in got])
                self._cached += len(got)
                tail.known = max(tail.known, got[-1][0])
                tail.epoch = epoch
                if len(tail.recs) > window:
                    self._cached -= tail.trim(window // 2)
            if self._cached > _MAX_CACHED:
                self._shrink()

    def _refresh(self, tails: dict[str, _Tail]) -> None:
        """Add what other processes stored to these caches, in one round trip.

        A cache whose read failed, or that got a full window (there may be more), is
        distrusted: its readers read the store themselves and hear why it fails.
        """
        # Under the handover lock, as every read that fills a cache: a row this process
        # stored and has not handed over yet is not read here, so a reader never gets
        # it both from the cache and from the rows taken before they were stored.
        with self._handover:
            with self._mem:
                epoch = self._epoch
                afters = {sid: tail.known for sid, tail in tails.items()}
            try:
                stored = self.backend.read_many(afters, _MAX_WINDOW)
            except StorageError:
                stored = {}
            with self._mem:
                window = max(_MIN_WINDOW, min(_MAX_WINDOW, _MAX_CACHED // (2 * max(1, len(self._tails)))))
                for sid, tail in tails.items():
                    rows = stored.get(sid)
                    if self._tails.get(sid) is not tail or rows is None:
                        tail.marks += 1
                        tail.epoch = -1
                        continue
                    for row in rows:
                        tail.add((*row, None, 0))
                    self._cached += len(rows)
                    if rows:
                        tail.known = max(tail.known, rows[-1][0])
                    if len(rows) >= _MAX_WINDOW:
                        tail.marks += 1
                        tail.epoch = -1
                    else:
                        tail.epoch = epoch
                    if len(tail.recs) > window:
                        self._cached -= tail.trim(window // 2)
                if self._cached > _MAX_CACHED:
                    self._shrink()

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

    def wait(self, token: tuple[int, int, int], timeout: float | None, key: Key) -> None:
        """Block until ``generation(key)`` moves past ``token`` or ``timeout`` passes."""
        if self._start_watching():
            return   # one may have landed unannounced: the caller re-checks before blocking
        # A lock of its own, taken now and released by the bump that wakes it: one futex
        # wake per reader, no condition variable to re-acquire.
        waiter = _allocate_lock()
        waiter.acquire()
        with self._io:
            if self.generation(key) != token:
                return
            self._waiting.setdefault(key, []).append(waiter)
        try:
            if key[1] is None and not self.synced(key[0]):
                self._kick()   # (registered first: an append after this sees the waiter)
            waiter.acquire(True, -1 if timeout is None else max(0.0, timeout))
        finally:
            with self._io:
                locks = self._waiting.get(key)
                if locks is not None and waiter in locks:
                    locks.remove(waiter)
                    if not locks:
                        del self._waiting[key]

    async def wait_async(self, token: tuple[int, int, int], timeout: float | None, key: Key) -> None:
        """``wait`` for coroutines: suspend (never block the loop) until ``generation(key)``
        moves past ``token`` or ``timeout`` passes. The writer thread resolves the
        awaited future through the loop's ``call_soon_threadsafe``, once per loop per store."""
        if not self._watching:
            self.wait(token, 0, key)   # start listening to other processes; the caller re-checks
            return
        loop: Any = _running_loop()   # (asyncio's own lookup, without importing asyncio here)
        future = loop.create_future()
        with self._io:
            if self.generation(key) != token:
                return
            self._async_waiting.setdefault(key, []).append(future)
        if key[1] is None and not self.synced(key[0]):
            self._kick()
        timer = None if timeout is None or add_timeout(loop, timeout, future) \
            else loop.call_later(timeout, _settle, future)
        try:
            await future
        finally:
            if timer is not None:
                timer.cancel()
            if not future.done():
                future.cancel()
            with self._io:
                futures = self._async_waiting.get(key)
                if futures and future in futures:
                    futures.remove(future)
                    if not futures:
                        del self._async_waiting[key]

    def synced(self, sid: str) -> bool:
        """Return True when what this process appended to ``sid`` is stored, or storing
        fails (readers then go on with what was stored)."""
        return self._sid_upto.get(sid, self._cleared_at) <= self._stored or self._failure is not None

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
