"""``ThreadPoolExecutor`` and ``Thread`` that carry the caller's context into workers.

The one change from the stdlib: the callable runs in a copy of the submitter's
``contextvars`` context, so a worker writes under the submitter's session tag (and sees
its module lineage and settings). A worker's exception is raised by ``future.result()``
as usual and also written as an ``error`` event, so a reader loop learns of it.

A top-level submit — no run open and no module running in the submitter — is a run of
its own (``run_start`` … ``run_end``, see ``lazystream.runs``), and its future's
``cancel()`` stops it even while it runs. Submits made by running work (a ``parallel``
branch, a tool) belong to the run that made them.
"""
from __future__ import annotations

import concurrent.futures
import contextvars
import threading
from collections.abc import Callable
from typing import Any

from .queue import has_unread, wake, work_started
from .runs import Run, current_run, report_error, run_call
from .session import _sid, current_ns, current_sid, is_explicit

__all__ = ["Thread", "ThreadPoolExecutor", "producer_pool", "report_error", "work_pool"]


def _run_reporting(fn: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
    try:
        return fn(*args, **kwargs)
    except BaseException as e:
        report_error(e)
        raise


class _RunCell:
    """Links a future to the run its worker opens, so ``cancel()`` can reach it."""

    __slots__ = ("cancelled", "run")

    def __init__(self) -> None:
        self.run: Run | None = None
        self.cancelled = False


def _run_as_run(cell: _RunCell, name: str, fn: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
    def body(*a: Any, **k: Any) -> Any:
        cell.run = current_run()
        if cell.cancelled:    # cancel() came between the start and the run's opening
            cell.run.cancel()  # type: ignore[union-attr]
        return fn(*a, **k)
    return run_call(name, body, args, kwargs, implicit=not is_explicit())


def _name_of(fn: Callable[..., Any]) -> str:
    name = getattr(fn, "name", None)
    return name if isinstance(name, str) else getattr(fn, "__name__", type(fn).__name__)


def _carry() -> contextvars.Context:
    current_sid()   # make sure the submitter has a tag, so the copy shares it
    return contextvars.copy_context()


class _DrainedFuture(concurrent.futures.Future):
    """A future whose ``done()`` also waits until its session's polled queues are drained.

    The seed's loop — ``if q.dequeue(): … elif future.done(): break`` — would otherwise
    lose what the worker wrote between an empty ``dequeue`` and ``done()``. Only queues
    this process has been dequeuing for the session count, so a queue nobody reads never
    holds ``done()`` back. ``result()``, ``wait`` and ``as_completed`` are unchanged.
    """

    _lazystream_sid = ""
    _lazystream_cell: _RunCell | None = None

    def done(self) -> bool:
        return super().done() and not has_unread(self._lazystream_sid)

    def cancel(self) -> bool:
        """Cancel the work; unlike the stdlib, also while it runs, if the future owns a run.

        A running run stops at its next token or tool boundary (its model's HTTP stream is
        closed at once) and ``result()`` raises ``RunCancelled``. Returns False only when
        the work already finished or cannot be stopped (a nested submit).
        """
        if super().cancel():
            return True
        cell = self._lazystream_cell
        if cell is None or super().done():
            return False
        cell.cancelled = True
        if cell.run is not None:
            cell.run.cancel()
        return True


class ThreadPoolExecutor(concurrent.futures.ThreadPoolExecutor):
    """The stdlib pool, running each callable in a copy of the submitter's context."""

    _lazystream_runs = True   # False: top-level submits open no run (a caller that opens its own)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future:
        """Schedule ``fn(*args, **kwargs)`` under the submitter's session; return its future.

        The future's ``done()`` is True once the work finished *and* the session's queues
        that this process has been dequeuing are empty (see ``_DrainedFuture``).
        """
        context = _carry()
        sid = context[_sid]
        cell = None
        if self._lazystream_runs and current_run() is None and not current_ns():
            cell = _RunCell()
            future = super().submit(context.run, _run_reporting, _run_as_run,
                                    (cell, _name_of(fn), fn, args, kwargs), {})
        else:
            future = super().submit(context.run, _run_reporting, fn, args, kwargs)
        future.__class__ = _DrainedFuture   # same layout; only done() and cancel() differ
        assert isinstance(future, _DrainedFuture)
        future._lazystream_sid = sid
        future._lazystream_cell = cell
        work_started(sid)
        future.add_done_callback(_wake_readers)   # a polling reader waiting in dequeue() checks done()
        return future


def _wake_readers(future: concurrent.futures.Future) -> None:
    wake(future._lazystream_sid)  # type: ignore[attr-defined]


_shared_lock = threading.Lock()
_producers: ThreadPoolExecutor | None = None


def producer_pool() -> ThreadPoolExecutor:
    """The process's pool for streaming calls that open their own run in their own session
    (``lazystream.stream``, ``streamify``): its submits open no run. A documented cache;
    threads are made on demand."""
    global _producers
    with _shared_lock:
        if _producers is None:
            _producers = ThreadPoolExecutor(max_workers=64, thread_name_prefix="lazystream-producer")
            _producers._lazystream_runs = False
        return _producers


def work_pool(max_workers: int) -> ThreadPoolExecutor:
    """A pool for a step's own workers (``parallel`` branches, tool calls): its submits
    never open runs, even when the step was called outside any run."""
    pool = ThreadPoolExecutor(max_workers=max_workers)
    pool._lazystream_runs = False
    return pool


class Thread(threading.Thread):
    """A ``threading.Thread`` whose target runs in a copy of the creator's context.

    ``prehook``: a callable or a list of callables run in the thread before the target.
    ``get_result()`` waits for the thread and returns the target's return value, or
    raises its exception (as LazyLLM's ``Thread``, the exception is not raised inside the
    thread, so ``threading.excepthook`` does not print it). It is also written as an
    ``error`` event and kept in ``.exception``.
    """

    def __init__(self, group: None = None, target: Callable[..., Any] | None = None,
                 name: str | None = None, args: tuple = (), kwargs: dict[str, Any] | None = None,
                 *, prehook: Callable[[], Any] | list[Callable[[], Any]] | None = None,
                 daemon: bool | None = None) -> None:
        super().__init__(group, target, name, args, kwargs, daemon=daemon)
        hooks = list(prehook) if isinstance(prehook, (list, tuple)) else [prehook] if prehook else []
        for hook in hooks:
            if not callable(hook):
                raise TypeError(f"Thread: prehook must be a callable or a list of callables, "
                                f"got {hook!r}")
        self._prehooks = hooks
        self._context = _carry()
        self._result: Any = None
        self.exception: BaseException | None = None

    def _work(self) -> Any:
        for hook in self._prehooks:
            hook()
        if self._target is not None:  # type: ignore[attr-defined]  # threading.Thread's own fields
            return self._target(*self._args, **self._kwargs)  # type: ignore[attr-defined]
        return None

    def run(self) -> None:
        try:
            self._result = self._context.run(self._work)
        except Exception as e:  # noqa: BLE001 - kept for get_result() and reported, as LazyLLM
            self.exception = e
            self._context.run(report_error, e)
        finally:
            del self._target, self._args, self._kwargs  # type: ignore[attr-defined]  # as the stdlib: no cycles

    def get_result(self, timeout: float | None = None) -> Any:
        """Wait for the thread; return the target's result or raise its exception.

        Raises ``TimeoutError`` if the thread is still running after ``timeout`` seconds,
        and ``RuntimeError`` if it was never started.
        """
        if self.ident is None:
            raise RuntimeError(f"Thread {self.name!r}: get_result() before start(); call start() first")
        self.join(timeout)
        if self.is_alive():
            raise TimeoutError(f"Thread {self.name!r} is still running after {timeout} s")
        if self.exception is not None:
            raise self.exception
        return self._result
