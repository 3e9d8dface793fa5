"""Runs: one unit of work, from ``run_start`` to ``run_end``, and how to stop it.

A run is opened by a top-level ``ThreadPoolExecutor.submit`` (no run open and no module
running in the submitter), by ``lazystream.stream``/``astream``, by ``streamify`` and by
the web layer. Work the run starts (module calls, executor workers, tools) shares its
``Run`` through the context.

Cancellation: ``cancel(sid)`` stops every run of a session, from any thread or any process
sharing the store. In this process it sets the runs' flag and calls their closers (an LLM
module registers one that closes its HTTP stream, so a stalled model does not delay the
stop). For other processes it stores a ``cancel`` event on the session's ``lazy_control``
queue; each process with open runs watches those queues (``_Watcher``). Work checks the
flag at its token and tool boundaries with ``check_cancelled()`` and then raises
``RunCancelled``; the run ends with ``run_end{status: "cancelled"}``.
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any

from .events import CONTROL_QUEUE, IDLE
from .queue import backend, emit
from .session import current_ns, current_sid, is_cancellation

__all__ = [
    "Run",
    "RunCancelled",
    "add_usage",
    "cancel",
    "check_cancelled",
    "current_run",
    "open_run",
    "report_error",
    "run_call",
]


class RunCancelled(concurrent.futures.CancelledError):
    """The run was cancelled (``lazystream.cancel``, ``future.cancel()``, a reader left)."""


_current: ContextVar[Run | None] = ContextVar("lazystream_run", default=None)
_lock = threading.Lock()
_active: dict[str, set[Run]] = {}      # sid -> its open runs in this process
_open_implicit: dict[str, int] = {}      # sid -> open runs of an implicit session


class Run:
    """The state of one open run: its id, session, cancellation flag, usage totals."""

    __slots__ = (
        "__weakref__",
        "_closers",
        "_lock",
        "cancelled",
        "id",
        "name",
        "output",
        "sid",
        "started",
        "usage",
    )

    def __init__(self, sid: str, name: str) -> None:
        self.id = f"run_{uuid.uuid4().hex}"
        self.sid = sid
        self.name = name
        self.started = time.time()
        self.cancelled = threading.Event()
        self.usage: dict[str, int] | None = None
        self.output: Any = None
        self._closers: dict[int, Callable[[], None]] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<Run {self.id} {self.name!r} sid={self.sid!r}>"

    def cancel(self) -> None:
        """Set the flag and call the closers (each once); safe from any thread."""
        with self._lock:
            if self.cancelled.is_set():
                return
            self.cancelled.set()
            closers = list(self._closers.values())
        for close in closers:
            # a closer that fails (the stream already closed) must not stop the others
            with contextlib.suppress(Exception):
                close()

    @contextlib.contextmanager
    def on_cancel(self, close: Callable[[], None]) -> Iterator[None]:
        """Call ``close()`` if the run is cancelled while the block runs (at once if it
        already was). Used to close an HTTP stream the worker is blocked reading."""
        key = id(close)
        with self._lock:
            already = self.cancelled.is_set()
            if not already:
                self._closers[key] = close
        if already:
            close()
        try:
            yield
        finally:
            with self._lock:
                self._closers.pop(key, None)

    def add_usage(self, usage: dict[str, Any]) -> None:
        """Add one model call's token counts to the run's totals."""
        with self._lock:
            total = self.usage or {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
            for k in total:
                v = usage.get(k)
                if isinstance(v, int):
                    total[k] += v
            self.usage = total


def current_run() -> Run | None:
    """Return the run the caller works for, or ``None`` outside any run."""
    return _current.get()


def check_cancelled() -> None:
    """Raise ``RunCancelled`` if the caller's run was cancelled (a tool's check point)."""
    run = _current.get()
    if run is not None and run.cancelled.is_set():
        raise RunCancelled(f"run {run.id} of session {run.sid!r} was cancelled")


def add_usage(usage: dict[str, Any]) -> None:
    """Add a model call's usage to the current run's totals (if any)."""
    run = _current.get()
    if run is not None:
        run.add_usage(usage)


def report_error(exc: BaseException) -> None:
    """Write ``exc`` as an ``error`` event once, however many executors it crosses.

    Cancellations are not failures and are not reported.
    """
    if getattr(exc, "_lazystream_reported", False) or is_cancellation(exc):
        return
    try:
        exc._lazystream_reported = True  # type: ignore[attr-defined]
    except AttributeError:
        pass
    emit("error", {"type": type(exc).__name__, "message": str(exc)}, ns=current_ns(), lenient=True)


def _error(exc: BaseException) -> dict[str, str]:
    return {"type": type(exc).__name__, "message": str(exc)}


@contextlib.contextmanager
def open_run(name: str, input: Any, *, implicit: bool = False) -> Iterator[Run]:
    """Open a run in the current session for the block: ``run_start`` now, ``run_end``
    (ok / error / cancelled) at exit, the ``error`` event first on failure.

    ``implicit``: the session is a thread's implicit one; when its last open run ends an
    ``idle`` event tells readers that nothing more is running. Set ``run.output`` to
    report the result in ``run_end``.
    """
    run = Run(current_sid(), name)
    token = _current.set(run)
    with _lock:
        _active.setdefault(run.sid, set()).add(run)
        if implicit:
            _open_implicit[run.sid] = _open_implicit.get(run.sid, 0) + 1
    _Watcher.ensure()
    emit("run_start", {"run": run.id, "name": name, "input": input}, ns=(), lenient=True)
    status, error, output = "ok", None, None
    try:
        yield run
        output = run.output
    except BaseException as e:
        if is_cancellation(e) or run.cancelled.is_set():
            status = "cancelled"
        else:
            status, error = "error", _error(e)
            report_error(e)
        raise
    finally:
        with _lock:
            runs = _active.get(run.sid)
            if runs is not None:
                runs.discard(run)
                if not runs:
                    del _active[run.sid]
            idle = False
            if implicit:
                left = _open_implicit.get(run.sid, 1) - 1
                if left:
                    _open_implicit[run.sid] = left
                else:
                    _open_implicit.pop(run.sid, None)
                    idle = True
        emit("run_end", {"run": run.id, "status": status, "error": error, "output": output,
                         "usage": run.usage}, ns=(), lenient=True)
        if idle:
            emit(IDLE, {"run": run.id}, ns=())
        _current.reset(token)


def run_call(name: str, fn: Callable[..., Any], args: tuple, kwargs: dict, *,
             implicit: bool = False) -> Any:
    """Call ``fn(*args, **kwargs)`` as a run (see ``open_run``); return its result.

    An exception that leaves a cancelled run is raised as ``RunCancelled`` (from it).
    """
    payload: Any = args[0] if len(args) == 1 and not kwargs else {"args": list(args), "kwargs": kwargs}
    with open_run(name, payload, implicit=implicit) as run:
        try:
            result = fn(*args, **kwargs)
        except BaseException as e:
            if run.cancelled.is_set() and not isinstance(e, RunCancelled):
                raise RunCancelled(f"run {run.id} of session {run.sid!r} was cancelled") from e
            raise
        run.output = result
        return result


def cancel(sid: str) -> bool:
    """Cancel every run of session ``sid``, in this process or any other sharing the store.

    Returns True if a run of this process was told to stop or a cancel request was
    stored for another process; False if the session is unknown or has already ended.
    Raises ``ValueError`` for a sid that is not a non-empty string.
    """
    if not isinstance(sid, str) or not sid:
        raise ValueError(f"cancel: sid must be a non-empty session id string, got {sid!r}")
    with _lock:
        runs = list(_active.get(sid, ()))
    for run in runs:
        run.cancel()
    if runs:
        return True
    info = backend().session_info(sid)
    if info is None or info.get("ended") is not None:
        return False
    # Another process writes this session: tell it through the store.
    emit("cancel", {"pid": os.getpid()}, sid=sid, queue=CONTROL_QUEUE, ns=())
    return True


class _Watcher:
    """One thread per process that reads the control queues of the sessions with open
    runs here, and cancels a run when another process asked (``cancel`` after its start)."""

    _thread: threading.Thread | None = None
    _wake = threading.Event()
    _EVERY = 0.05       # at most this often a scan of the open sessions' control queues
    _IDLE_SCAN = 0.25   # at least this often, in case a wake-up was missed

    @classmethod
    def ensure(cls) -> None:
        if cls._thread is None or not cls._thread.is_alive():
            with _lock:
                if cls._thread is None or not cls._thread.is_alive():
                    cls._thread = threading.Thread(target=cls._loop, name="lazystream-cancel-watch",
                                                   daemon=True)
                    cls._thread.start()

    @classmethod
    def _loop(cls) -> None:
        after: dict[str, int] = {}
        while True:
            with _lock:
                sids = list(_active)
            if not sids:
                after.clear()
                cls._wake.wait(1.0)
                cls._wake.clear()
                continue
            b = backend()
            # Other processes' stores wake the readers of the sessions they touched (or all):
            # one open session is watched by its control queue's key (not the session's,
            # which every token moves), several by the global generation.
            key = (sids[0], CONTROL_QUEUE) if len(sids) == 1 else ("\0control", None)
            token = b.generation(key)
            for sid in sids:
                try:
                    events = b.read(sid, (CONTROL_QUEUE,), after.get(sid, 0), None)
                except Exception:  # noqa: BLE001, S112 - a store error must not kill the watcher
                    continue
                for event in events:
                    after[sid] = event.seq
                    if event.kind == "cancel":
                        with _lock:
                            runs = list(_active.get(sid, ()))
                        for run in runs:
                            if event.ts >= run.started - 0.001:
                                run.cancel()
            for sid in list(after):
                if sid not in sids:
                    del after[sid]
            time.sleep(cls._EVERY)   # at most one scan per interval, however busy the store
            b.wait(token, cls._IDLE_SCAN, key)
