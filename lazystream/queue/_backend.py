"""The interface every queue backend provides, and the pieces backends share.

A backend stores the append-only event log of every session, addressed by
``(sid, queue)``, plus one dequeue cursor per ``(sid, queue)``. ``FileSystemQueue`` (the
front) never knows which backend it talks to; adding one (Redis, say) is a new file that
subclasses ``Backend``.

Writes are asynchronous in-process: ``append`` is cheap and returns at once, a writer
stores appended events in order (group commit), and every read first waits for what this
process appended before it (``sync``), so a thread always reads its own writes.
"""
from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable
from typing import Any

from ..events import Event

__all__ = ["Backend", "StorageError", "Row", "Key", "encode", "encode_ns", "project", "make_event"]

# (sid, queue, kind, ns_json, data_json, ts): one appended, not yet stored event.
Row = tuple[str, str, str, str, str, float]
# What a reader waits on: (sid, queue), or (sid, None) for every queue of the session.
Key = tuple[str, "str | None"]
_MAX_KEYS = 100_000


class StorageError(RuntimeError):
    """The queue store cannot be used (unwritable home, corrupted file, full disk…)."""


# Built once: json.dumps with keyword arguments builds a new encoder on every call.
_STRICT = json.JSONEncoder(ensure_ascii=False, allow_nan=False)
_LENIENT = json.JSONEncoder(ensure_ascii=False, allow_nan=False, default=repr)


def encode(data: Any, *, lenient: bool = False) -> str:
    """Return ``data`` as JSON text, keeping non-ASCII readable.

    Raises ``TypeError`` naming the type when ``data`` is not JSON-serialisable, and
    ``ValueError`` for what JSON cannot hold (NaN, Infinity, lone surrogates), unless
    ``lenient``, in which case such values become their ``repr``.
    """
    try:
        text = (_LENIENT if lenient else _STRICT).encode(data)
        text.encode("utf-8")   # a lone surrogate would fail later, in the writer, for everyone
        return text
    except TypeError as e:
        raise TypeError(
            f"queue item of type {type(data).__name__} is not JSON-serialisable ({e}); "
            "enqueue a str or a JSON value (dict, list, str, int, float, bool, None)") from None
    except (ValueError, UnicodeEncodeError) as e:
        if lenient:
            try:
                return json.dumps(_printable(data), allow_nan=False, default=repr)
            except (ValueError, RecursionError):   # a circular structure
                return json.dumps(repr(data))
        raise ValueError(
            f"queue item {_short(data)} cannot be stored as JSON ({e}); NaN, Infinity, lone "
            "surrogates and circular references are not JSON: replace them first") from None


def _printable(value: Any) -> Any:
    """``value`` with what JSON cannot hold replaced by its repr (for lenient traces)."""
    if isinstance(value, float) and value != value or value in (float("inf"), float("-inf")):
        return repr(value)
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {str(k): _printable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_printable(v) for v in value]
    return value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_ns_cache: dict[tuple[str, ...], str] = {}


def encode_ns(ns: tuple[str, ...]) -> str:
    """Return the stored form of a lineage; cached because the same few recur per token."""
    text = _ns_cache.get(ns)
    if text is None:
        text = json.dumps(list(ns), ensure_ascii=False)
        if len(_ns_cache) < 4096:
            _ns_cache[ns] = text
    return text


_ns_decode_cache: dict[str, tuple[str, ...]] = {}


def decode_ns(text: str) -> tuple[str, ...]:
    ns = _ns_decode_cache.get(text)
    if ns is None:
        ns = tuple(json.loads(text))
        if len(_ns_decode_cache) < 4096:
            _ns_decode_cache[text] = ns
    return ns


def project(kind: str, data_json: str) -> Any:
    """Return the seed projection (``Event.value``) of a stored row without building an Event."""
    data = json.loads(data_json)
    if kind == "trace" and isinstance(data, dict) and "text" in data:
        return data["text"]
    return data


def make_event(seq: int, sid: str, queue: str, kind: str, ns: str, data: str, ts: float) -> Event:
    return Event(seq, sid, queue, kind, decode_ns(ns), json.loads(data), ts)


class Backend:
    """Operations a queue backend must provide. All are thread-safe."""

    def __init__(self) -> None:
        self._wait_lock = threading.Lock()
        self._global = 0
        self._key_generation: dict[Key, int] = {}
        self._waiting: dict[Key, list] = {}   # key -> [Condition, number of waiters]

    # --- writing ----------------------------------------------------------------------
    def append(self, row: Row) -> None:
        """Queue one encoded event for storing, in order; returns at once."""
        raise NotImplementedError

    def sync(self) -> None:
        """Block until every event this process appended before the call is stored.

        Raises ``StorageError`` if storing failed.
        """
        raise NotImplementedError

    # --- reading ----------------------------------------------------------------------
    def read(self, sid: str, queues: tuple[str, ...] | None, after: int, limit: int | None) -> list[Event]:
        """Non-destructively read events of ``sid`` (in ``queues``, or all) with ``seq > after``."""
        raise NotImplementedError

    def take(self, sid: str, queue: str, limit: int | None) -> list[Any]:
        """Atomically return the projected values after the queue's cursor and advance it.

        Two readers (threads or processes) never receive the same item.
        """
        raise NotImplementedError

    def peek(self, sid: str, queue: str) -> Event | None:
        """Non-destructively return the next event after the cursor, or ``None``."""
        raise NotImplementedError

    def size(self, sid: str, queue: str) -> int:
        """Return how many events are after the cursor."""
        raise NotImplementedError

    def clear(self, sid: str, queue: str) -> None:
        """Destructively move the cursor past every stored event of the queue."""
        raise NotImplementedError

    def session_info(self, sid: str) -> dict[str, Any] | None:
        """Return ``{"pid", "started", "ended", "status"}`` for a session, or ``None``."""
        raise NotImplementedError

    def prune(self, retention: float, now: float) -> int:
        """Delete sessions ended more than ``retention`` s ago, and consumed events older
        than that of sessions still open. Returns the number of events deleted."""
        raise NotImplementedError

    # --- waiting ----------------------------------------------------------------------
    # Readers wait on a key: (sid, queue), or (sid, None) for a whole session. A store
    # wakes only the readers of the keys it touched, so many sessions at once do not all
    # wake on every commit. A global generation wakes everyone (other processes' commits,
    # finished futures).

    def generation(self, key: Key) -> tuple[int, int]:
        """Return a token that changes whenever something may have been stored under ``key``."""
        return self._global, self._key_generation.get(key, 0)

    def notify(self, keys: Iterable[Key] | None = None) -> None:
        """Wake the readers of ``keys`` (and of their whole sessions), or every reader."""
        with self._wait_lock:
            if keys is None or len(self._key_generation) > _MAX_KEYS:
                if keys is not None:
                    self._key_generation.clear()   # bounded memory; the global bump covers it
                self._global += 1
                for cond, _ in self._waiting.values():
                    cond.notify_all()
                return
            gens = self._key_generation
            for sid, queue in keys:
                for key in ((sid, queue), (sid, None)):
                    gens[key] = gens.get(key, 0) + 1
                    entry = self._waiting.get(key)
                    if entry is not None:
                        entry[0].notify_all()

    def wait(self, token: tuple[int, int], timeout: float | None, key: Key) -> None:
        """Block until ``generation(key)`` moves past ``token`` or ``timeout`` passes.

        Never spins: in-process readers are notified; a backend shared across processes
        either wakes readers itself or overrides ``_poll_external``.
        """
        if self._before_wait():
            # Just started listening for other processes: something may have landed
            # unannounced, so the caller re-checks before blocking.
            self.notify()
            return
        deadline = None if timeout is None else time.monotonic() + timeout
        slice_ = self._external_poll_interval()
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
                    step = remaining if slice_ is None else (slice_ if remaining is None else min(slice_, remaining))
                    if entry[0].wait(step):
                        continue
                    if slice_ is not None and self._poll_external():
                        self._global += 1
            finally:
                entry[1] -= 1
                if entry[1] == 0:
                    del self._waiting[key]

    def _before_wait(self) -> bool:
        """Prepare to block; return True if the caller must re-check before blocking."""
        return False

    def _external_poll_interval(self) -> float | None:
        """Seconds between checks for writes by other processes; ``None``: never."""
        return None

    def _poll_external(self) -> bool:
        """Return True if another process may have stored something since the last call."""
        return False

    def close(self) -> None:
        """Store what is pending and release resources."""

