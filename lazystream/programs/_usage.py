"""Each LM call as a message of the run, and DSPy's usage tracking.

Inside a lazystream run (``streamify``, ``lazystream.stream``), every LM call writes
``message_start`` … ``usage`` … ``message_end`` (its ``text`` events come from the LM when a
listener streams it), so a reader sees the calls and their token counts even for a
predictor nobody listens to. Outside a run nothing is written.

``settings.configure(track_usage=True)``: a program's ``Prediction`` answers
``get_lm_usage()`` with ``{lm.model: {"prompt_tokens", "completion_tokens", "total_tokens"}}``
summed over the LM calls the program made (cache hits count nothing), as DSPy does.
"""
from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from ..queue import emit
from ..runs import RunCancelled, add_usage, current_run
from ..session import is_cancellation

__all__ = ["LMCall", "lm_call", "tracking", "usage_of"]

_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens")


class _Tracker:
    """Usage per LM model over one program call (shared by the workers it starts)."""

    def __init__(self) -> None:
        self.by_model: dict[str, dict[str, int]] = {}
        self.lock = threading.Lock()

    def add(self, model: str, usage: dict[str, Any]) -> None:
        with self.lock:
            total = self.by_model.setdefault(model, dict.fromkeys(_KEYS, 0))
            for k in _KEYS:
                if isinstance(usage.get(k), int):
                    total[k] += usage[k]

    def totals(self) -> dict[str, dict[str, int]]:
        with self.lock:
            return {m: dict(u) for m, u in self.by_model.items()}


_tracker: ContextVar[_Tracker | None] = ContextVar("lazystream_lm_usage", default=None)


@contextlib.contextmanager
def tracking(enabled: bool) -> Iterator[_Tracker | None]:
    """Track LM usage for the block if ``enabled`` and no outer block tracks already;
    yield the tracker this block owns (or ``None``)."""
    if not enabled or _tracker.get() is not None:
        yield None
        return
    tracker = _Tracker()
    token = _tracker.set(tracker)
    try:
        yield tracker
    finally:
        _tracker.reset(token)


def usage_of(usage: Any) -> dict[str, Any] | None:
    """The three counts of an SDK usage object, or ``None``."""
    if usage is None:
        return None
    return {k: getattr(usage, k, None) for k in _KEYS}


class LMCall:
    """One LM call: records its usage and, inside a run, writes it as a message."""

    __slots__ = ("id", "model", "written")

    def __init__(self, model: str) -> None:
        self.id = f"msg_{uuid.uuid4().hex}"
        self.model = model
        self.written = current_run() is not None

    def usage(self, usage: dict[str, Any] | None) -> None:
        if not usage:
            return
        add_usage(usage)
        tracker = _tracker.get()
        if tracker is not None:
            tracker.add(self.model, usage)
        if self.written:
            emit("usage", {**usage, "message": self.id})


@contextlib.contextmanager
def lm_call(model: str) -> Iterator[LMCall]:
    """Wrap one LM call: ``message_start`` … ``message_end`` inside a run."""
    call = LMCall(model)
    run = current_run()
    if call.written:
        emit("message_start", {"id": call.id, "run": run.id if run is not None else None,
                               "role": "assistant", "model": model})
    finish = "stop"
    try:
        yield call
    except BaseException as e:
        finish = "cancelled" if isinstance(e, RunCancelled) or is_cancellation(e) else "error"
        raise
    finally:
        if call.written:
            emit("message_end", {"id": call.id, "finish_reason": finish})
