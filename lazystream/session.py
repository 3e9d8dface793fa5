"""Session tags: which request a piece of work belongs to.

A ContextVar holds the tag. ``lazystream.ThreadPoolExecutor`` copies the submitter's
context into its workers, so everything a worker writes lands in the submitter's session.
A thread that never set a tag gets a fresh one, unique for the life of the process (never
the OS thread ident, which the OS reuses).

This layer knows nothing of queues: the queue layer registers a close listener to write
the session's terminal event.
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import copy
import os
import sys
import threading
import weakref
from collections.abc import Callable, Iterator, MutableMapping
from contextvars import ContextVar
from typing import Any

__all__ = ["current_ns", "current_sid", "globals", "is_explicit", "ns_scope", "on_close", "on_open",
           "session"]

_sid: ContextVar[str] = ContextVar("lazystream_sid")
_ns: ContextVar[tuple[str, ...]] = ContextVar("lazystream_ns", default=())
_globals: dict[str, dict[str, Any]] = {}
_globals_lock = threading.Lock()
_close_listeners: list[Callable[[str, str, BaseException | None], None]] = []
_open_listeners: list[Callable[[str], None]] = []
_explicit: ContextVar[bool] = ContextVar("lazystream_explicit_session", default=False)
# Explicit sessions open in this process (sid -> nesting depth): only the outermost block
# ends the session, so a nested ``session("x")`` writes no second ``end``.
_open_depth: dict[str, int] = {}
_depth_lock = threading.Lock()
_thread_owner = threading.local()


_MAX_SID = 256


def _new_sid() -> str:
    # 128 random bits: knowing one session's tag tells nothing about another's.
    return os.urandom(16).hex()   # what secrets.token_hex(16) does, without importing hashlib


def _check_sid(sid: object, where: str = "sid") -> str:
    """Return ``sid`` if it can be stored and read back exactly; else raise naming it.

    A tag (or queue name) is a non-empty str of at most 256 characters without NUL and
    without lone surrogates: a NUL would cut the key where a store or a C API reads it,
    and a surrogate cannot be encoded. Used for every ``sid=`` and queue name.
    """
    if type(sid) is not str:
        raise TypeError(f"{where} must be a str, got {type(sid).__name__} {sid!r}")
    if not sid or len(sid) > _MAX_SID or "\0" in sid or not sid.isprintable() and _has_bad_char(sid):
        raise ValueError(f"{where}={sid!r} cannot be used: give a non-empty string of at most {_MAX_SID} "
                         "characters without NUL or lone surrogates (e.g. a uuid4().hex)")
    return sid


def _has_bad_char(sid: str) -> bool:
    try:
        sid.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def current_sid() -> str:
    """Return the current session tag, creating a fresh one for this context if unset."""
    try:
        return _sid.get()
    except LookupError:
        pass
    sid = _new_sid()
    _sid.set(sid)
    # An implicit session lives as long as the thread that made it: free its globals then.
    holder = getattr(_thread_owner, "holder", None)
    if holder is None:
        holder = _thread_owner.holder = _SessionHolder()
    holder.sids.append(sid)
    return sid


class _SessionHolder:
    """Thread-local object whose finalisation frees the implicit sessions' globals."""

    def __init__(self) -> None:
        self.sids: list[str] = []
        weakref.finalize(self, _drop_globals, self.sids)


def _drop_globals(sids: list[str]) -> None:
    with _globals_lock:
        for sid in sids:
            _globals.pop(sid, None)


def is_explicit() -> bool:
    """Return True inside a ``session()`` block (or work submitted from one), False in a
    thread's implicit session."""
    return _explicit.get()


def on_open(listener: Callable[[str], None]) -> None:
    """Register ``listener(sid)``, called when a ``session(sid)`` block with a given sid
    opens (not when nested); it raises ``ValueError`` to refuse a sid (e.g. one ended)."""
    _open_listeners.append(listener)


def on_close(listener: Callable[[str, str, BaseException | None], None]) -> None:
    """Register ``listener(sid, status, exc)``, called when a ``session()`` block ends.

    ``status`` is ``"ok"``, ``"error"`` or ``"cancelled"``.
    """
    _close_listeners.append(listener)


@contextlib.contextmanager
def session(sid: str | None = None) -> Iterator[str]:
    """Open a new, isolated session for the block and yield its tag.

    On exit the session's globals are freed and its terminal ``end`` event is written
    (status ``ok``, ``error`` or ``cancelled``). Raises ``ValueError`` for an empty tag.
    """
    given = sid is not None
    sid = _new_sid() if sid is None else _check_sid(sid, "session: sid")
    with _depth_lock:
        depth = _open_depth.get(sid, 0)
        _open_depth[sid] = depth + 1
    if given and not depth:
        try:
            for listener in _open_listeners:
                listener(sid)
        except BaseException:
            _release(sid)
            raise
    token = _sid.set(sid)
    ns_token = _ns.set(())
    explicit_token = _explicit.set(True)
    status: str = "ok"
    exc: BaseException | None = None
    try:
        yield sid
    except GeneratorExit as e:
        status, exc = "cancelled", e
        raise
    except BaseException as e:
        status, exc = ("cancelled" if is_cancellation(e) else "error"), e
        raise
    finally:
        _explicit.reset(explicit_token)
        _ns.reset(ns_token)
        _sid.reset(token)
        if _release(sid):
            with _globals_lock:
                _globals.pop(sid, None)
            for close_listener in _close_listeners:
                close_listener(sid, status, exc)


def _release(sid: str) -> bool:
    """Leave one level of ``session(sid)``; return True when it was the outermost."""
    with _depth_lock:
        depth = _open_depth.get(sid, 1) - 1
        if depth:
            _open_depth[sid] = depth
            return False
        _open_depth.pop(sid, None)
        return True


def is_cancellation(exc: BaseException) -> bool:
    """Return True for the exceptions that mean "stopped on purpose", not "failed"."""
    if isinstance(exc, (KeyboardInterrupt, GeneratorExit, concurrent.futures.CancelledError)):
        return True
    # asyncio's own CancelledError exists only once asyncio is loaded; not importing it
    # here keeps ``import lazystream`` fast.
    aio = sys.modules.get("asyncio")
    return aio is not None and isinstance(exc, aio.CancelledError)


def current_ns() -> tuple[str, ...]:
    """Return the lineage of the running module: e.g. ``("agent", "llm")``."""
    return _ns.get()


@contextlib.contextmanager
def ns_scope(name: str) -> Iterator[tuple[str, ...]]:
    """Append ``name`` to the current lineage for the block."""
    token = _ns.set(_ns.get() + (name,))
    try:
        yield _ns.get()
    finally:
        _ns.reset(token)


# LazyLLM's per-session keys: present (as fresh empty values) in every session.
_DEFAULTS: dict[str, Any] = {"user_id": None, "chat_history": {}, "global_parameters": {},
                             "lazyllm_files": {}, "usage": {}}


class _Globals(MutableMapping):
    """A dict-like store private to the current session, freed when the session ends.

    Every session starts with LazyLLM's keys (``chat_history``, ``global_parameters``,
    ``lazyllm_files``, ``usage`` as empty dicts, ``user_id`` as None), also readable as
    attributes (``globals.chat_history``). ``globals._sid`` is the session tag.
    """

    def _data(self) -> dict[str, Any]:
        sid = current_sid()
        data = _globals.get(sid)
        if data is None:
            with _globals_lock:
                data = _globals.setdefault(sid, copy.deepcopy(_DEFAULTS))
        return data

    @property
    def _sid(self) -> str:
        """The current session tag (LazyLLM's name for ``current_sid()``)."""
        return current_sid()

    def _init_sid(self, sid: str | None = None) -> str:
        """Tag the current context with ``sid`` (a fresh tag if None); return it."""
        if sid is not None and (not isinstance(sid, str) or not sid):
            raise ValueError(f"globals._init_sid: sid must be a non-empty string, got {sid!r}")
        sid = sid or _new_sid()
        _sid.set(sid)
        return sid

    def __getitem__(self, key: str) -> Any:
        try:
            return self._data()[key]
        except KeyError:
            raise KeyError(f"{key!r} is not set in the globals of session {current_sid()!r}; "
                           f"set it first (globals[{key!r}] = ...) or use globals.get({key!r})") from None

    def __setitem__(self, key: str, value: Any) -> None:
        self._data()[key] = value

    def __delitem__(self, key: str) -> None:
        del self._data()[key]

    def __iter__(self):
        return iter(list(self._data()))

    def __len__(self) -> int:
        return len(self._data())

    def clear(self) -> None:
        """Drop this session's values; the next access starts again from the defaults."""
        with _globals_lock:
            _globals.pop(current_sid(), None)

    def __getattr__(self, key: str) -> Any:
        if key in _DEFAULTS:
            return self[key]
        raise AttributeError(f"globals has no attribute {key!r}; read session values as "
                             f"globals[{key!r}]")

    def __setattr__(self, key: str, value: Any) -> None:
        if key in _DEFAULTS:
            self[key] = value
        else:
            raise AttributeError(f"globals: set session values as globals[{key!r}] = ...")

    def __repr__(self) -> str:
        return f"globals({self._data()!r})"


globals = _Globals()
