"""The link between a running program and the ``streamify`` call that runs it.

``streamify`` (a layer above) sets ``current_run`` to a ``StreamRun`` in the producer's
context; ``lazystream.ThreadPoolExecutor`` copies the context, so predictors and LMs in
workers see it too. Outside ``streamify`` it is ``None`` and programs write nothing.

How an LM call is tied to its predictor (the protocol ``streamify`` reads back):

* ``Predict`` gives each LM call an id ``@N`` (unique in the run), pushes it on the
  lineage (``ns``), and writes ``lm_start`` ``{"call", "predictor", "adapter", "fields"}``
  before the call and ``lm_end`` ``{"call", "ok"}`` after it;
* if a listener wants that predictor, ``Predict`` sets ``token_run`` for the call, and the
  LM streams: each content delta is a ``text`` event whose ``ns`` holds the call id;
* the LM checks ``StreamRun.cancelled`` at every token, and stops (closing the HTTP stream)
  by raising ``concurrent.futures.CancelledError``.
"""
from __future__ import annotations

import concurrent.futures
import itertools
import threading
from contextvars import ContextVar

__all__ = ["StreamRun", "check_cancelled", "current_run", "token_run"]


class StreamRun:
    """State one ``streamify`` call shares with the program it runs."""

    __slots__ = ("_calls", "cancelled", "names", "wanted")

    def __init__(self, names: dict[int, str], wanted: set[str]) -> None:
        self.cancelled = threading.Event()
        self.names = names      # id(predictor) -> its name in named_predictors()
        self.wanted = wanted    # names of the predictors some listener streams
        self._calls = itertools.count(1)

    def new_call(self) -> str:
        """Return a fresh LM-call id, ``@1``, ``@2``, … (``@`` cannot start a module name)."""
        return f"@{next(self._calls)}"


current_run: ContextVar[StreamRun | None] = ContextVar("lazystream_stream_run", default=None)
token_run: ContextVar[StreamRun | None] = ContextVar("lazystream_stream_tokens", default=None)


def check_cancelled(run: StreamRun | None) -> None:
    """Raise ``concurrent.futures.CancelledError`` if ``run``'s reader went away."""
    if run is not None and run.cancelled.is_set():
        raise concurrent.futures.CancelledError("the streamify reader stopped; run cancelled")
