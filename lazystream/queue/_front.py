"""``FileSystemQueue`` and ``emit``: the front every writer and reader uses.

The front validates, encodes and routes; the backend (chosen once per process by
``LAZYSTREAM_QUEUE``) stores. Configuration, read when the backend is first needed:

* ``LAZYSTREAM_QUEUE`` — ``sqlite`` (default) or ``memory``;
* ``LAZYSTREAM_HOME`` — the directory of the SQLite file (default ``~/.lazystream``,
  created ``0700``; the file ``queue.db`` is ``0600``);
* ``LAZYSTREAM_RETENTION`` — seconds a finished session's events are kept (default 3600);
* ``LAZYSTREAM_IDLE_RETENTION`` — seconds after its last event that a session which never
  ended (a thread's implicit one) is dropped (default 86400);
* ``LAZYSTREAM_SWITCH_INTERVAL`` — the GIL switch interval lazystream lowers the
  interpreter's to (default 0.002 s; ``0`` keeps Python's), see ``_tune_switch_interval``;
* ``LAZYSTREAM_START_GRACE`` — seconds ``tail`` waits for a session that is not in the
  store yet before it raises ``SessionUnknown`` (default 10).

Every value is checked when the backend is first needed; a bad one raises ``ValueError``
naming the variable, the value and an example.
"""
from __future__ import annotations

import math
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any, ClassVar

from ..events import DEFAULT_QUEUE, EVENTS_QUEUE, IDLE, TERMINAL, TRACE_QUEUE, Event, queue_for
from ..session import _check_sid, current_ns, current_sid, on_close, on_open
from ._backend import StorageError, encode, encode_ns, pid_alive
from ._hub import ANY, Hub

__all__ = ["FileSystemQueue", "ProducerGone", "SessionUnknown", "TailReader", "backend", "emit",
           "flush", "has_unread", "producer_gone", "prune", "read_session", "sessions", "tail"]


class ProducerGone(RuntimeError):
    """The process writing a session died before the session's terminal event."""


class SessionUnknown(LookupError):
    """No such session in the store: never started, or ended and removed by retention."""


_lock = threading.Lock()
_backend: Hub | None = None   # the process's hub over its backend: a documented cache, see reset()
_IMMUTABLE = (str, int, float, bool, type(None))


def _sid(sid: str | None) -> str:
    """The session a call is about: ``sid`` checked, or the caller's own when ``None``."""
    return current_sid() if sid is None else _check_sid(sid)


def backend() -> Hub:
    """Return the process's queue hub, creating it and its backend from the environment on first use.

    Raises ``ValueError`` for a bad ``LAZYSTREAM_QUEUE``/``LAZYSTREAM_RETENTION`` and
    ``StorageError`` for an unusable ``LAZYSTREAM_HOME`` or database file.
    """
    global _backend
    b = _backend
    if b is not None:
        return b
    with _lock:
        if _backend is None:
            _backend = _make_backend()
        return _backend


def _seconds(variable: str, default: str) -> float:
    raw = os.environ.get(variable, default)
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{variable}={raw!r} is not a number of seconds >= 0; e.g. {default}")
    return value


def _retention() -> float:
    return _seconds("LAZYSTREAM_RETENTION", "3600")


def _idle_retention() -> float:
    return _seconds("LAZYSTREAM_IDLE_RETENTION", "86400")


def _tune_switch_interval() -> None:
    """Lower the interpreter's GIL switch interval (never raise it).

    A producer that computes between tokens (an SDK parsing SSE) holds the GIL; the
    writer and an in-process reader get it back only after a switch interval, several
    times per batch. Measured on an unpaced 2,000-token stream: at Python's 5 ms readers
    lag ~85 ms; at 2 ms ~25 ms with throughput unchanged; below 1 ms the extra switching
    costs throughput. ``LAZYSTREAM_SWITCH_INTERVAL=0`` leaves the interpreter alone.
    """
    raw = os.environ.get("LAZYSTREAM_SWITCH_INTERVAL", "0.002")
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"LAZYSTREAM_SWITCH_INTERVAL={raw!r} is not a number of seconds >= 0; "
                         "e.g. 0.002, or 0 to keep Python's own")
    if 0 < value < sys.getswitchinterval():
        sys.setswitchinterval(value)


def _start_grace() -> float:
    return _seconds("LAZYSTREAM_START_GRACE", "10")


def _make_backend() -> Hub:
    raw = os.environ.get("LAZYSTREAM_QUEUE", "sqlite").strip()
    kind = raw.lower() or "sqlite"
    retention, idle, _ = _retention(), _idle_retention(), _start_grace()
    _tune_switch_interval()
    if kind.startswith(("redis://", "rediss://")):   # the raw value: a password keeps its case
        from ._redis import RedisBackend
        return Hub(RedisBackend(raw, prefix=os.environ.get("LAZYSTREAM_REDIS_PREFIX", "lazystream"),
                                reconnect=_seconds("LAZYSTREAM_REDIS_RECONNECT", "30"),
                                retention=retention, idle_retention=idle),
                   retention=retention, idle_retention=idle)
    if kind == "memory":
        from ._memory import MemoryBackend
        return Hub(MemoryBackend(), retention=retention, idle_retention=idle)
    if kind != "sqlite":
        raise ValueError(f"LAZYSTREAM_QUEUE={kind!r} is not a queue backend; use 'sqlite' or 'memory', "
                         "or redis://[user:password@]host:port/db (rediss:// for TLS) for several hosts")
    from ._sqlite import SqliteBackend
    home = os.path.expanduser(os.environ.get("LAZYSTREAM_HOME") or "~/.lazystream")
    try:
        os.makedirs(home, mode=0o700, exist_ok=True)
        # a name of our own: processes starting together must not remove each other's probe
        probe = os.path.join(home, f".write-probe-{os.getpid()}-{threading.get_ident()}")
        with open(probe, "w"):
            pass
        os.remove(probe)
    except OSError as e:
        raise StorageError(f"LAZYSTREAM_HOME={home!r} is not a writable directory ({e.strerror or e}); "
                           "set LAZYSTREAM_HOME to a directory you can write") from e
    return Hub(SqliteBackend(os.path.join(home, "queue.db")), retention=retention, idle_retention=idle)


def reset() -> None:
    """Close the process's backend so the next use re-reads the environment (for tests)."""
    global _backend
    with _lock:
        if _backend is not None:
            _backend.close()
        _backend = None
        _ended.clear()


def emit(kind: str, data: Any, *, ns: tuple[str, ...] | None = None, queue: str | None = None,
         sid: str | None = None, lenient: bool = False) -> None:
    """Write one event to the current session (or ``sid``).

    ``ns`` defaults to the running module's lineage, ``queue`` to the kind's queue (see
    ``lazystream.events``). With ``lenient``, values that are not JSON become their repr;
    otherwise they raise ``TypeError`` and nothing is written.
    """
    if not kind or not isinstance(kind, str):
        raise ValueError(f"emit: kind must be a non-empty string, got {kind!r}")
    _append(kind, data, queue_for(kind) if queue is None else _check_sid(queue, "queue"), sid, ns, lenient)


def _append(kind: str, data: Any, queue: str, sid: str | None, ns: tuple[str, ...] | None = None,
            lenient: bool = False) -> None:
    """Encode one event and hand it to the hub (``queue`` already checked)."""
    row = (current_sid() if sid is None else _check_sid(sid), queue, kind,
           encode_ns(current_ns() if ns is None else tuple(ns)), encode(data, lenient=lenient), time.time())
    (_backend or backend()).append(row, data if not lenient and type(data) in _IMMUTABLE else None)


def flush(timeout: float | None = None) -> None:
    """Block until every event this process wrote before the call is stored (durable
    against this process dying; see docs/guarantees.md).

    Raises ``StorageError`` when the store fails for ``timeout`` seconds (the events stay
    in memory and are retried), ``TimeoutError`` when it is merely slower than that.
    """
    (_backend or backend()).flush(None if timeout is None else _positive(timeout, "timeout"))


def _positive(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a number of seconds >= 0, got {value!r}")
    return value


def _check_limit(limit: int | None) -> int | None:
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise ValueError(f"limit must be a positive int or None, got {limit!r}")
    return limit


def _deadline(timeout: float | None) -> float | None:
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout >= 0:
        raise ValueError(f"timeout must be a number of seconds >= 0 or None, got {timeout!r}")
    return time.monotonic() + timeout


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


class FileSystemQueue:
    """A named queue of items per session; ``FileSystemQueue()`` is the default one.

    Every method takes ``sid=`` and defaults to the caller's session tag, so a worker of
    ``lazystream.ThreadPoolExecutor`` and its submitter share a queue.
    """

    _instances: ClassVar[dict[str, FileSystemQueue]] = {}
    _name: str
    _kind: str

    def __new__(cls, name: str = DEFAULT_QUEUE) -> FileSystemQueue:  # noqa: PYI034 - one shared instance per name
        inst = cls._instances.get(name) if isinstance(name, str) else None
        if inst is not None:
            return inst
        if not isinstance(name, str):
            raise TypeError(f"FileSystemQueue: name must be a str, got {type(name).__name__} {name!r}")
        if not name:
            raise ValueError("FileSystemQueue: name must be a non-empty string; "
                             f"FileSystemQueue() is the default queue {DEFAULT_QUEUE!r}")
        _check_sid(name, "FileSystemQueue: name")
        with _lock:
            inst = cls._instances.get(name)
            if inst is None:
                inst = object.__new__(cls)
                inst._name = name
                inst._kind = "text" if name == DEFAULT_QUEUE else "trace" if name == TRACE_QUEUE else "item"
                cls._instances[name] = inst
        return inst

    @classmethod
    def get_instance(cls, name: str) -> FileSystemQueue:
        """Return the one queue object named ``name`` (callable on an instance too)."""
        return cls(name)

    @property
    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return f"FileSystemQueue({self._name!r})"

    def enqueue(self, item: Any, *, sid: str | None = None) -> None:
        """Append ``item`` (a str or JSON value). Raises ``TypeError`` for other values."""
        _append(self._kind if type(item) is str else "item", item, self._name, sid)

    def flush(self, timeout: float | None = None) -> None:
        """Block until what this process enqueued so far is stored (see ``queue.flush``)."""
        flush(timeout)

    def dequeue(self, limit: int | None = None, *, sid: str | None = None) -> list[Any]:
        """Remove and return up to ``limit`` items (all by default); ``[]`` when empty.

        At most once: an item is returned to one caller only, and is gone for ``dequeue``
        even if that caller dies before using it (``read(after=seq)`` still has it).
        """
        sid = _sid(sid)
        _note_reader(sid, self._name)
        b = _backend or backend()
        items = b.take(sid, self._name, _check_limit(limit))
        return items if items else _after_empty(b, sid, self._name, limit)

    def get(self, timeout: float | None = None, *, limit: int | None = None, sid: str | None = None) -> list[Any]:
        """Block until at least one item arrives, then remove and return the items: at
        most ``limit``, or 4,096 when ``limit`` is None, so a reader that fell far behind
        catches up in bounded steps instead of holding the whole backlog in memory.

        Returns ``[]`` when ``timeout`` seconds pass first (``None``: wait for ever).
        """
        b, sid, deadline = (_backend or backend()), _sid(sid), _deadline(timeout)
        limit = _GET_BATCH if _check_limit(limit) is None else limit
        _note_reader(sid, self._name)
        key = (sid, self._name)
        while True:
            token = b.generation(key)
            items = b.take(sid, self._name, limit)
            if items:
                return items
            remaining = _remaining(deadline)
            if remaining == 0:
                return []
            b.wait(token, remaining, key)

    async def aget(self, timeout: float | None = None, *, limit: int | None = None,
                   sid: str | None = None) -> list[Any]:
        """``get`` for coroutines: suspends without blocking the event loop (no thread
        per reader), so one loop can read thousands of sessions."""
        b, sid, deadline = (_backend or backend()), _sid(sid), _deadline(timeout)
        limit = _GET_BATCH if _check_limit(limit) is None else limit
        _note_reader(sid, self._name)
        key = (sid, self._name)
        while True:
            token = b.generation(key)
            items = b.take(sid, self._name, limit)
            if items:
                return items
            remaining = _remaining(deadline)
            if remaining == 0:
                return []
            await b.wait_async(token, remaining, key)

    def peek(self, *, sid: str | None = None) -> Any:
        """Return the next item without removing it, or ``None`` when empty."""
        items = (_backend or backend()).peek(_sid(sid), self._name)
        return items[0] if items else None

    def size(self, *, sid: str | None = None) -> int:
        """Return how many items a ``dequeue()`` would return now."""
        return (_backend or backend()).size(_sid(sid), self._name)

    def clear(self, *, sid: str | None = None) -> None:
        """Remove every item now in the queue (they stay readable by ``read``)."""
        (_backend or backend()).clear(_sid(sid), self._name)

    def read(self, after: int = 0, *, limit: int | None = None, sid: str | None = None) -> list[Event]:
        """Return the queue's events with ``seq > after``, without removing anything.

        Use the last event's ``seq`` as the next ``after`` to resume.
        """
        return (_backend or backend()).read(_sid(sid), (self._name,), after, _check_limit(limit))


# A polling loop (the seed's ``if q.dequeue(): … elif future.done(): break``) must not burn
# a core. When this thread finds the session empty twice with nothing stored in between,
# and work of the session submitted to a lazystream pool of this process is still running,
# the second ``dequeue()`` waits (woken by the next store of the session or by that work
# finishing) for at most _POLL_WAIT before it returns []. 50 ms: at a model's pace
# (25 tok/s) a shorter bound wakes the loop more often than tokens come, and every wake-up
# costs CPU (the loop cost 1.8-2.0x the raw client at 20 ms, 1.5-1.7x at 50 ms). With no
# such work running there is nothing here to wait for: the loop's own ``done()`` is about
# to end it, so an empty poll returns at once (a wait would only delay the end of the
# loop by the bound).
_POLL_WAIT = 0.05
_poller = threading.local()
# sid -> how many futures of the session's pool work are running in this process
_working: dict[str, int] = {}
_working_lock = threading.Lock()


def _after_empty(b: Hub, sid: str, queue: str, limit: int | None) -> list[Any]:
    if not _working.get(sid):
        return []
    key = (sid, ANY)
    token = b.generation(key)
    if getattr(_poller, "last", None) != (sid, token):
        _poller.last = (sid, token)    # something happened since: no wait this time
        return []
    b.wait(token, _POLL_WAIT, key)
    items = b.take(sid, queue, limit)
    _poller.last = None if items else (sid, b.generation(key))
    return items


def work_started(sid: str) -> None:
    """Count a future of ``sid``'s work as running (a polling reader may wait for it)."""
    with _working_lock:
        _working[sid] = _working.get(sid, 0) + 1


def wake(sid: str) -> None:
    """A future of ``sid``'s work finished: stop counting it, wake the session's readers."""
    with _working_lock:
        left = _working.get(sid, 0) - 1
        if left > 0:
            _working[sid] = left
        else:
            _working.pop(sid, None)
    if _backend is not None:
        _backend.notify(((sid, None),))


# Which queues of a session have been read destructively in this process: the queues a
# polling reader is draining. A documented cache, bounded, dropped when a session ends.
_readers: dict[str, set[str]] = {}
_MAX_READER_SESSIONS = 100_000


def _note_reader(sid: str, queue: str) -> None:
    names = _readers.get(sid)
    if names is None:
        if len(_readers) >= _MAX_READER_SESSIONS:
            _readers.clear()
        names = _readers[sid] = set()
    names.add(queue)


def has_unread(sid: str) -> bool:
    """Return True if a queue this process has been dequeuing for ``sid`` holds items."""
    names = _readers.get(sid)
    if not names:
        return False
    b = _backend or backend()
    return any(b.size(sid, name) for name in list(names))


def read_session(sid: str, after: int = 0, *, queues: tuple[str, ...] | None = None,
                 timeout: float | None = None, limit: int | None = None) -> list[Event]:
    """Return the session's events (of ``queues``, or all) with ``seq > after``, in order.

    With ``timeout``, block until at least one arrives or the timeout passes (then ``[]``).
    """
    b, deadline, sid = (_backend or backend()), _deadline(timeout), _check_sid(sid)
    queues = None if queues is None else tuple(queues)
    _check_limit(limit)
    key = (sid, None)
    while True:
        token = b.generation(key)
        events = b.read(sid, queues, after, limit)
        remaining = _remaining(deadline)
        if events or deadline is None or remaining == 0:
            return events
        b.wait(token, remaining, key)


async def aread_session(sid: str, after: int = 0, *, queues: tuple[str, ...] | None = None,
                        timeout: float | None = None, limit: int | None = None) -> list[Event]:
    """``read_session`` for coroutines: the same events, and it suspends on the hub (no
    thread, never blocking the event loop) until they are stored."""
    b, deadline, sid = (_backend or backend()), _deadline(timeout), _check_sid(sid)
    queues = None if queues is None else tuple(queues)
    _check_limit(limit)
    key = (sid, None)
    while True:
        token = b.generation(key)
        synced = b.synced(sid)   # else this process's own rows are on their way: wait for them
        events = b.read(sid, queues, after, limit, sync=False) if synced else []
        remaining = _remaining(deadline)
        if synced and (events or deadline is None) or remaining == 0:
            return events
        await b.wait_async(token, remaining, key)


class LiveReader:
    """Follows one session from its start in this process, seeing also the rows this
    process appended and has not stored yet (their ``Event.seq`` is 0), so following
    costs no store per row. For in-process readers that never resume by seq
    (``streamify``); ``read`` / ``aread`` return what arrives within ``timeout`` s."""

    def __init__(self, sid: str) -> None:
        self.sid = _check_sid(sid)
        self._pos = 0
        self._number = 0
        self._key = (self.sid, ANY)

    def _poll(self, b: Hub) -> list[Event]:
        got = b.read_live(self.sid, self._pos, self._number)
        if got is None:   # far behind the cache: the store, stored rows only
            events = read_session(self.sid, self._pos)
            if events:
                self._pos = events[-1].seq
            return events
        events, self._pos, self._number = got
        return events

    def read(self, timeout: float | None = None) -> list[Event]:
        b, deadline = (_backend or backend()), _deadline(timeout)
        while True:
            token = b.generation(self._key)
            events = self._poll(b)
            remaining = _remaining(deadline)
            if events or remaining == 0:
                return events
            b.wait(token, remaining, self._key)

    async def aread(self, timeout: float | None = None) -> list[Event]:
        b, deadline = (_backend or backend()), _deadline(timeout)
        while True:
            token = b.generation(self._key)
            events = self._poll(b)
            remaining = _remaining(deadline)
            if events or remaining == 0:
                return events
            await b.wait_async(token, remaining, self._key)


_LIVENESS_EVERY = 0.5
_GET_BATCH = 4096
_STOPS = (TERMINAL, IDLE)


def tail(sid: str | None = None, after: int = 0, *, timeout: float | None = None,
         queues: tuple[str, ...] | None = None) -> Iterator[Event]:
    """Yield the session's events from ``after`` on, as they arrive, through its ``end`` event
    (or its ``idle`` event: a thread's implicit session whose runs have all ended).

    Never waits for ever on a session that cannot end. Raises ``TimeoutError`` if
    ``timeout`` seconds pass with no new event; ``ProducerGone`` if the process that
    writes the session died without ending it; ``SessionUnknown`` at once for a session
    retention removed, and after ``LAZYSTREAM_START_GRACE`` seconds (default 10) for one
    that never appeared in the store.
    """
    reader = TailReader(sid, after, timeout=timeout, queues=queues)
    while not reader.done:
        yield from reader.step(_LIVENESS_EVERY)


class TailReader:
    """The core of ``tail``, one bounded step at a time: ``step(wait)`` blocks at most
    ``wait`` seconds and returns the next events (maybe none); ``done`` after the ``end``
    or ``idle`` event. The async reader (``lazystream.atail``) drives the same core."""

    def __init__(self, sid: str | None = None, after: int = 0, *, timeout: float | None = None,
                 queues: tuple[str, ...] | None = None) -> None:
        self.sid = _sid(sid)
        self.after = after
        self.done = False
        self._timeout = timeout
        self._queues = queues
        self._watched = None if queues is None else tuple(set(queues) | {EVENTS_QUEUE})
        self._started = self._last_event = time.monotonic()
        self._seen = after > 0

    def step(self, wait: float) -> list[Event]:
        """Return the events that arrive within ``wait`` s; raise as ``tail`` documents."""
        return self._took(read_session(self.sid, self.after, queues=self._watched, timeout=wait))

    async def astep(self, wait: float) -> list[Event]:
        """``step`` for coroutines (suspends; never blocks the loop while waiting)."""
        return self._took(await aread_session(self.sid, self.after, queues=self._watched, timeout=wait))

    def _took(self, events: list[Event]) -> list[Event]:
        sid, queues, watched = self.sid, self._queues, self._watched
        out = []
        for event in events:
            self.after = event.seq
            if queues is None or event.queue in queues or event.kind in _STOPS:
                out.append(event)
            if event.kind in _STOPS:
                self.done = True
                return out
        now = time.monotonic()
        if events:
            self._seen, self._last_event = True, now
            return out
        if self._timeout is not None and now - self._last_event >= self._timeout:
            raise TimeoutError(f"tail: no event in session {sid!r} for {self._timeout} s")
        info = (_backend or backend()).session_info(sid)
        if info is None or info["pruned"]:
            unknown = _unknown(sid, info, None if self._seen else now - self._started)
            if unknown is not None:
                raise SessionUnknown(f"tail: {unknown}")
            return out
        gone = _gone(sid, info)
        if gone is not None and not read_session(sid, self.after, queues=watched, limit=1):
            # (if it wrote its last events after our read, then died: send them first)
            raise ProducerGone(f"tail: {gone}")
        return out


def _unknown(sid: str, info: dict[str, Any] | None, waited: float | None) -> str | None:
    """Why ``sid`` will never be readable, or ``None`` while it may still start."""
    if info is not None:
        return (f"session {sid!r} ended ({info['status']}) at {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(info['ended']))} "
                f"and its events were removed by retention (LAZYSTREAM_RETENTION={_retention():g} s)")
    if waited is None:
        return f"session {sid!r} is no longer in the store"
    grace = _start_grace()
    if waited >= grace:
        return (f"no session {sid!r} in the store after {grace:g} s (LAZYSTREAM_START_GRACE): it never "
                "started here, or it ended and was removed by retention long ago; check the sid and LAZYSTREAM_HOME")
    return None


def sessions(limit: int | None = None) -> list[dict[str, Any]]:
    """Return the stored sessions, newest first, at most ``limit``: each
    ``{"sid", "pid", "host", "started", "ended", "status", "events", "last"}``.

    For inspection (``lazystream sessions``), off any producer's hot path. Raises
    ``StorageError`` when the store cannot be read.
    """
    _check_limit(limit)
    return backend().sessions(limit)


def producer_gone(sid: str) -> str | None:
    """Return why a session will never end — its writing process died before its ``end``
    event — or ``None`` while it may still be written (or has ended).

    SQLite records pids, so only processes on this host can be checked (a killed process
    that its parent has not reaped yet, a zombie, counts as dead). Redis records a
    heartbeat per writing process, so its ``session_info`` says ``alive`` for any host.
    """
    return _gone(sid, (_backend or backend()).session_info(_check_sid(sid)))


def _gone(sid: str, info: dict[str, Any] | None) -> str | None:
    if info is None or info["pruned"] or info["ended"] is not None:
        return None
    if "alive" in info:   # a store shared across hosts knows better than a local pid
        if info["alive"]:
            return None
        return (f"the process (pid {info['pid']} on {info.get('host') or 'another host'}) writing session "
                f"{sid!r} stopped without ending it (it exited, or lost its connection to the store)")
    if pid_alive(info["pid"]):
        return None
    if info.get("host") not in (None, _HOST):
        return None
    return f"the process (pid {info['pid']}) writing session {sid!r} exited without ending it"


_HOST = socket.gethostname()


def prune(retention: float | None = None) -> int:
    """Delete events of sessions ended more than ``retention`` s ago (default: the
    configured retention) and consumed events that old; return how many were deleted."""
    b = backend()
    b.flush()
    return b.expire(_retention() if retention is None else _positive(retention, "retention"), time.time())


def _write_terminal(sid: str, status: str, exc: BaseException | None) -> None:
    data: dict[str, Any] = {"status": status}
    if exc is not None and status == "error":
        data["error"] = {"type": type(exc).__name__, "message": str(exc)}
        if not getattr(exc, "_lazystream_reported", False):
            # the failure itself, in the session it broke, before its end
            emit("error", data["error"], sid=sid, ns=(), lenient=True)
            try:
                exc._lazystream_reported = True  # type: ignore[attr-defined]
            except AttributeError:
                pass
    emit(TERMINAL, data, sid=sid, ns=())
    _readers.pop(sid, None)
    _ended[sid] = None
    if len(_ended) > _MAX_ENDED:
        del _ended[next(iter(_ended))]


# Sessions this process ended, newest last: their end may not be stored yet when the same
# sid is opened again. A documented, bounded cache, dropped with the backend (reset()).
_ended: dict[str, None] = {}
_MAX_ENDED = 10_000


def _refuse_ended(sid: str) -> None:
    """Refuse to reopen an ended session: it already has its one terminal event."""
    info = None if sid in _ended else (_backend or backend()).session_info(sid)
    if sid in _ended or (info is not None and info["ended"] is not None):
        raise ValueError(f"session: {sid!r} has already ended (its end event is written); "
                         "use a new sid, or session() for a fresh one")


on_close(_write_terminal)
on_open(_refuse_ended)
