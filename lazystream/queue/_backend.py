"""The storage interface every queue backend implements, and the pieces backends share.

A backend is only storage: an append-only log of events per session, a record per
session, and one persisted dequeue cursor per ``(sid, queue)``. Everything that makes the
queue cheap per token — group commit, backpressure, ``flush()``, in-process delivery
without a store round trip, in-memory dequeue cursors, waking readers — lives once, in
the hub (``_hub.py``), above every backend. A new backend (Redis, say) is one file that
subclasses ``Backend`` and implements the eight methods below (``read_many`` and
``sessions`` have defaults); each is called by one hub per process and must be safe to call
from several threads.

The methods map onto a network store one round trip each:

=================== =========================================================================
``store``           append a batch of rows in order, atomically (SQLite: one transaction;
                    Redis: one MULTI of XADDs); also persists moved dequeue cursors
``read``            events of one session after a seq (a cursor), in seq order
``read_many``       the stored rows of several sessions, each after its own seq, in one
                    round trip (Redis: one pipeline); the hub calls it when another
                    process names the sessions it stored (default: one ``read`` each)
``claim``/``release`` the one process that may dequeue ``(sid, queue)`` (see below)
``session_info``    ``{"pid", "host", "started", "ended", "status"}`` of a session
``expire``          delete what retention says is old; remember what was deleted
``watch``           call back when *another process* may have stored something
``shared``          whether another process may be reading now (how long the hub may linger)
``close``           release connections and threads
=================== =========================================================================

Rules a backend keeps:

* ``seq`` is a positive int, strictly increasing within a session in commit order, never
  reused (also after ``expire`` deletes the newest rows). It is the resume cursor.
* A row of kind ``end`` marks its session ended, with ``status`` from its data.
* The first row of an unknown sid creates the session record with this process's pid.
* Dequeue ownership: a ``(sid, queue)`` is dequeued by one process at a time, its owner.
  The owner keeps the cursor in memory and persists it lazily (``store(cursors=…)``,
  ``release``); another process that wants it while the owner lives gets ``QueueBusy``;
  when the owner died (``owner_alive`` is False) the next claimer takes it over from the
  persisted cursor.
"""
from __future__ import annotations

import json
import json.scanner
import math
import os
import socket
import sys
from collections.abc import Callable
from typing import Any, cast

from ..events import Event

__all__ = ["MAX_DEPTH", "TOMBSTONES", "Announced", "Backend", "Key", "QueueBusy", "Row", "StorageError",
           "Stored", "decode", "decode_ns", "encode", "encode_ns", "make_event", "owner_alive",
           "owner_token", "pid_alive"]

# (sid, queue, kind, ns_json, data_json, ts): one encoded event, before it has a seq.
Row = tuple[str, str, str, str, str, float]
# (seq, queue, kind, ns_json, data_json, ts): one encoded event as stored (its sid known).
Stored = tuple[int, str, str, str, str, float]
# What a reader waits on: (sid, queue), or (sid, None) for every queue of the session.
Key = tuple[str, "str | None"]


class StorageError(RuntimeError):
    """The queue store cannot be used (unwritable home, corrupted file, full disk…)."""


class QueueBusy(StorageError):
    """Another live process is dequeuing this ``(sid, queue)``."""


class Announced:
    """Events of one session that another process's store announced with their data.

    Every event of the session after ``prev`` up to the last of ``rows()`` is in
    ``rows()``, in seq order, so a reader that has read the store up to ``prev`` (or
    further) needs no read. ``rows()`` decodes on demand: most announced sessions are
    read by nobody in the receiving process.
    """

    __slots__ = ("prev",)

    def __init__(self, prev: int) -> None:
        self.prev = prev

    def rows(self) -> list[Stored]:
        raise NotImplementedError


class Backend:
    """Storage operations a queue backend provides (see the module docstring)."""

    #: a short name for messages ("sqlite", "memory", "redis")
    name = "?"
    #: where the data lives, for messages (a path, a URL)
    where = "?"

    def store(self, rows: list[Row], cursors: dict[tuple[str, str], int], owner: str) -> list[int]:
        """Store ``rows`` in order, atomically; return ``(seqs, created)``.

        ``seqs`` are the seqs given to the rows, in order; ``created`` the sids whose
        session record this call created (this process then knows their every event).
        ``cursors`` maps ``(sid, queue)`` to a dequeue position to persist, for the
        queues ``owner`` owns. ``rows`` may be empty (cursors only). Raises
        ``StorageError`` and stores nothing if it fails (the hub keeps the rows and
        retries).
        """
        raise NotImplementedError

    def read(self, sid: str, queues: tuple[str, ...] | None, after: int, limit: int | None) -> list[Event]:
        """Return stored events of ``sid`` (of ``queues``, or all) with ``seq > after``, in order."""
        raise NotImplementedError

    def read_many(self, afters: dict[str, int], limit: int) -> dict[str, list[Stored]]:
        """Non-destructively return, for each sid of ``afters``, its stored events with
        ``seq > afters[sid]`` as encoded ``Stored`` rows, in seq order, at most ``limit``
        per session (a session given ``limit`` rows may have more). One round trip where
        the store allows it; this default makes one ``read`` per session."""
        return {sid: [(e.seq, e.queue, e.kind, encode_ns(e.ns), encode(e.data, lenient=True), e.ts)
                      for e in self.read(sid, None, after, limit)] for sid, after in afters.items()}

    def claim(self, sid: str, queue: str, owner: str) -> int:
        """Make ``owner`` the dequeuer of ``(sid, queue)``; return the persisted cursor.

        Raises ``QueueBusy`` naming the owner if another owner holds it and
        ``owner_alive(that owner)``.
        """
        raise NotImplementedError

    def release(self, cursors: dict[tuple[str, str], int], owner: str) -> None:
        """Persist final cursor positions and give up ownership of those queues."""
        raise NotImplementedError

    def session_info(self, sid: str) -> dict[str, Any] | None:
        """Return ``{"pid", "host", "started", "ended", "status"}``, ``{"pruned": ended}``
        for a session expire deleted (remembered for a while), or ``None`` if unknown."""
        raise NotImplementedError

    def sessions(self, limit: int | None) -> list[dict[str, Any]]:
        """Non-destructively list stored sessions, newest first (by ``started``), at most
        ``limit``: ``{"sid", "pid", "host", "started", "ended", "status", "events", "last"}``
        (``events``: how many are stored; ``last``: time of the latest activity or None).
        Off the hot path: for ``lazystream sessions``, not for producers."""
        raise NotImplementedError(f"the {self.name!r} queue backend cannot list its sessions yet")

    def expire(self, retention: float, idle_retention: float, now: float) -> int:
        """Delete sessions ended more than ``retention`` s ago, sessions with no event for
        ``idle_retention`` s, and consumed events older than ``retention`` s of sessions
        still open; remember deleted sids (for ``session_info``) for ``max(retention,
        TOMBSTONES)`` s. Return events deleted."""
        raise NotImplementedError

    def watch(self, on_change: Callable[..., None]) -> None:
        """Start calling ``on_change(sids)`` when another process may have stored events of
        ``sids`` (``None``: of any session). Called once; later calls are no-ops. A
        backend whose announcements carry the events calls ``on_change(sids, announced)``,
        ``announced`` mapping some of the sids to an ``Announced``.

        Wake-ups may be late or spurious, never missing: a backend that cannot be told
        polls (the hub reads again anyway before a reader blocks).
        """
        raise NotImplementedError

    def shared(self) -> bool:
        """Return True while another process may be reading this store.

        The hub then stores within ``LINGER`` (so that reader is not kept waiting); when
        False, only this process reads, its readers take appended events at once, and the
        hub may gather ``LINGER_ALONE`` before it stores. Called once per batch: keep it
        cheap. The default, True, is always safe.
        """
        return True

    def close(self) -> None:
        """Release connections and threads. The hub has stored what was pending."""


TOMBSTONES = 3600.0   # s a backend remembers the sids expire deleted, at least


# --- owners: which process dequeues a queue ----------------------------------------------

_HOST = socket.gethostname()


def owner_token() -> str:
    """This process's owner token: ``host:pid:start``; unique across hosts and pid reuse."""
    return f"{_HOST}:{os.getpid()}:{_start_time(os.getpid())}"


def owner_alive(token: str | None) -> bool:
    """Return False when the owner process is known to be gone (same host only)."""
    if not token:
        return False
    host, _, rest = token.partition(":")
    pid_text, _, start = rest.partition(":")
    if host != _HOST:
        return True   # cannot check another host: a network backend expires owners itself
    try:
        pid = int(pid_text)
    except ValueError:
        return False
    return pid_alive(pid) and (not start or _start_time(pid) == start)


def pid_alive(pid: int) -> bool:
    """Return True while ``pid`` runs on this host. A zombie (exited, not yet reaped by its
    parent) counts as dead: it will never write again."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return _state(pid) not in ("Z", "X")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode("ascii", "replace")
    except OSError:
        return None
    return raw[raw.rfind(")") + 2:].split()   # the name may contain spaces and parens


def _state(pid: int) -> str:
    fields = _stat_fields(pid)
    return fields[0] if fields else "?"


def _start_time(pid: int) -> str:
    fields = _stat_fields(pid) if sys.platform.startswith("linux") else None
    return fields[19] if fields and len(fields) > 19 else ""


# --- encoding: once per event, at the door ----------------------------------------------

MAX_DEPTH = 64   # deeper JSON is refused: a reader elsewhere would hit RecursionError
_MAX_INT_BITS = 13_000   # ~3,900 digits: under Python's 4,300-digit str() limit

# Built once: json.dumps with keyword arguments builds a new encoder on every call.
_STRICT = json.JSONEncoder(ensure_ascii=False, allow_nan=False)
# And its C core, built once too: JSONEncoder.encode builds one per call (~1 µs of a
# token's cost). No circular-reference markers: every value has passed ``_problem`` or
# ``_printable``, which bound the depth, so a cycle is refused before it gets here.
_C_ENCODER = getattr(json.encoder, "c_make_encoder", None)
_CORE = None if _C_ENCODER is None else _C_ENCODER(
    None, _STRICT.default, json.encoder.encode_basestring, None, ": ", ", ", False, False, False)


def _dump(value: Any) -> str:
    """``_STRICT.encode(value)``, for a value already checked."""
    return _STRICT.encode(value) if _CORE is None else "".join(_CORE(value, 0))

_SCALARS = (str, int, float, bool, type(None))


def encode(data: Any, *, lenient: bool = False) -> str:
    """Return ``data`` as JSON text, keeping non-ASCII readable.

    Refuses, naming the value and the fix, what would not come back as it went in:
    non-JSON types (``TypeError``), NaN/Infinity, lone surrogates, non-str dict keys,
    ints over 4,300 digits, and nesting deeper than ``MAX_DEPTH`` (``ValueError``). With
    ``lenient`` (traces, tool results) such values are stored as their ``repr`` instead.
    """
    if type(data) is str:   # the per-token path
        try:
            text = _STRICT.encode(data)
            if not text.isascii():
                text.encode("utf-8")   # (a lone surrogate raises here)
            return text
        except UnicodeEncodeError as e:
            if lenient:
                return _dump(_printable(data, 0))
            raise ValueError(f"queue item {_short(data)} cannot be stored as JSON ({e}); lone "
                             "surrogates are not text: replace them first") from None
    if lenient:
        return _dump(_printable(data, 0))
    problem = _problem(data, 0)
    if problem is not None:
        raise (TypeError if problem.startswith("type") else ValueError)(
            f"queue item {_short(data)} cannot be stored as JSON: {problem}") from None
    text = _dump(data)
    text.encode("utf-8")
    return text


def _problem(value: Any, depth: int) -> str | None:
    """Return why ``value`` would not round-trip through JSON, or ``None``."""
    kind = type(value)
    if kind is str:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return f"{_short(value)} holds a lone surrogate, which is not text; replace it first"
        return None
    if kind is bool or value is None:
        return None
    if kind is int or isinstance(value, int):
        if value.bit_length() > _MAX_INT_BITS:
            return f"an int of more than 4,000 digits ({_short_int(value)}); send it as a str"
        return None
    if kind is float or isinstance(value, float):
        if not math.isfinite(value):
            return f"{value!r} is not JSON (NaN and Infinity are not numbers there); use None or a str"
        return None
    if depth >= MAX_DEPTH:
        return f"it is nested more than {MAX_DEPTH} levels deep; flatten it or send it as a str"
    if isinstance(value, dict):
        for k, v in value.items():
            if type(k) is not str:
                return (f"dict key {k!r} is a {type(k).__name__}, and JSON keys are strings: it would "
                        f"come back as {json.dumps(str(k))}; convert the keys with str() first")
            p = _problem(k, depth) or _problem(v, depth + 1)
            if p is not None:
                return p
        return None
    if isinstance(value, (list, tuple)):
        for v in value:
            p = _problem(v, depth + 1)
            if p is not None:
                return p
        return None
    return (f"type {kind.__name__} is not JSON-serialisable; enqueue a str or a JSON value "
            "(dict, list, str, int, float, bool, None)")


def _short_int(value: int) -> str:
    return f"about 10**{int(value.bit_length() * 0.30103)}"


def _printable(value: Any, depth: int) -> Any:
    """``value`` with what JSON cannot hold replaced by its repr (lenient events)."""
    kind = type(value)
    if kind is str:
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if value is None or kind is bool:
        return value
    if isinstance(value, int):
        return value if value.bit_length() <= _MAX_INT_BITS else _short_int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if depth >= MAX_DEPTH:
        return "<nested too deep>"
    if isinstance(value, dict):
        return {(k if type(k) is str else str(k)).encode("utf-8", "backslashreplace").decode("utf-8"):
                _printable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_printable(v, depth + 1) for v in value]
    try:
        return _printable(repr(value), depth)
    except Exception:  # noqa: BLE001 - a repr that fails is still not a reason to lose the event
        return f"<{type(value).__name__}>"


def _short(value: Any) -> str:
    try:
        text = _short_int(value) if isinstance(value, int) and value.bit_length() > _MAX_INT_BITS else repr(value)
    except (ValueError, RecursionError):
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 60 else text[:57] + "..."


_ns_cache: dict[tuple[str, ...], str] = {}
_ns_decode_cache: dict[str, tuple[str, ...]] = {}


def encode_ns(ns: tuple[str, ...]) -> str:
    """Return the stored form of a lineage; cached because the same few recur per token."""
    text = _ns_cache.get(ns)
    if text is None:
        text = json.dumps(list(ns), ensure_ascii=False)
        if len(_ns_cache) < 4096:
            _ns_cache[ns] = text
            _ns_decode_cache.setdefault(text, ns)
    return text


def decode_ns(text: str) -> tuple[str, ...]:
    ns = _ns_decode_cache.get(text)
    if ns is None:
        ns = tuple(decode(text))
        if len(_ns_decode_cache) < 4096:
            _ns_decode_cache[text] = ns
    return ns


# json's C scanner, called directly: ``json.loads`` goes through three Python frames
# (and two whitespace regexes) around it, ~2/3 of a token's decode. Stored text is our
# compact encoding, so the scan from 0 to the end is the whole answer; anything else
# (whitespace around it, invalid text) takes ``json.loads`` for its exact result or error.
_SCAN = json.scanner.make_scanner(cast(Any, json.JSONDecoder()))   # (typeshed: any decoder will do)


def decode(text: str) -> Any:
    """Decode stored JSON. A value another writer stored too deep for this reader comes
    back as an error dict instead of failing the whole read."""
    try:
        try:
            value, end = _SCAN(text, 0)
        except StopIteration:
            return json.loads(text)
        return value if end == len(text) else json.loads(text)
    except RecursionError:
        return {"error": "undecodable", "reason": f"nested deeper than this reader can decode "
                f"({len(text)} bytes)"}


def make_event(seq: int, sid: str, queue: str, kind: str, ns: str, data: str, ts: float) -> Event:
    return Event(seq, sid, queue, kind, decode_ns(ns), decode(data), ts)
