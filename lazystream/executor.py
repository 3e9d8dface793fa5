"""``ThreadPoolExecutor`` and ``Thread`` that carry the caller's context into workers.

The one change from the stdlib: the callable runs in a copy of the submitter's
``contextvars`` context, so a worker writes under the submitter's session tag (and sees
its module lineage and settings). A worker's exception is raised by ``future.result()``
as usual and also written as an ``error`` event, so a reader loop learns of it.
"""
from __future__ import annotations

import concurrent.futures
import contextvars
import threading
from collections.abc import Callable
from typing import Any

from .queue import emit, has_unread
from .session import _sid, current_sid, is_cancellation

__all__ = ["ThreadPoolExecutor", "Thread", "report_error"]


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
    emit("error", {"type": type(exc).__name__, "message": str(exc)})


def _run_reporting(fn: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
    try:
        return fn(*args, **kwargs)
    except BaseException as e:  # noqa: BLE001 - reported, then re-raised to the future
        report_error(e)
        raise


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

    def done(self) -> bool:
        return super().done() and not has_unread(self._lazystream_sid)


class ThreadPoolExecutor(concurrent.futures.ThreadPoolExecutor):
    """The stdlib pool, running each callable in a copy of the submitter's context."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future:
        """Schedule ``fn(*args, **kwargs)`` under the submitter's session; return its future.

        The future's ``done()`` is True once the work finished *and* the session's queues
        that this process has been dequeuing are empty (see ``_DrainedFuture``).
        """
        context = _carry()
        future = super().submit(context.run, _run_reporting, fn, args, kwargs)
        future.__class__ = _DrainedFuture   # same layout; only done() differs
        future._lazystream_sid = context[_sid]
        return future


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
        if self._target is not None:
            return self._target(*self._args, **self._kwargs)
        return None

    def run(self) -> None:
        try:
            self._result = self._context.run(self._work)
        except Exception as e:  # noqa: BLE001 - kept for get_result() and reported, as LazyLLM
            self.exception = e
            self._context.run(report_error, e)
        finally:
            del self._target, self._args, self._kwargs   # as the stdlib: no reference cycles

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
