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

    The target's exception is written as an ``error`` event and kept in ``.exception``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._context = _carry()
        self.exception: BaseException | None = None

    def run(self) -> None:
        try:
            self._context.run(super().run)
        except BaseException as e:  # noqa: BLE001 - reported, then the stdlib hook prints it
            self.exception = e
            self._context.run(report_error, e)
            raise
