"""The event envelope: everything the framework writes to a queue is an ``Event``.

Kinds (the one list):

=============== =============== ===========================================================
kind            queue           data
=============== =============== ===========================================================
``text``        ``lazy_stream`` a token string
``item``        any             a JSON value a user enqueued on a non-default queue
``trace``       ``lazy_trace``  ``{"text", "module", "path", "input", "output", "duration",
                                "error"}``; ``text`` is what the seed prints
``think``       ``lazy_events`` a reasoning-token string
``tool_call``   ``lazy_events`` ``{"id", "name", "arguments"}``
``tool_result`` ``lazy_events`` ``{"id", "name", "content", "error"}``
``status``      ``lazy_events`` a status message string
``usage``       ``lazy_events`` ``{"prompt_tokens", "completion_tokens", "total_tokens"}``
``error``       ``lazy_events`` ``{"type", "message"}``: a producer failed
``end``         ``lazy_events`` ``{"status": "ok"|"error"|"cancelled", "error": …}``: the
                                session's terminal event, exactly one, last
=============== =============== ===========================================================

Any other short lowercase kind is allowed and goes to ``lazy_events`` unless a queue is
named. ``data`` is JSON only: nothing read back is unpickled or eval'd.
"""
from __future__ import annotations

from typing import Any, NamedTuple

__all__ = ["Event", "DEFAULT_QUEUE", "TRACE_QUEUE", "EVENTS_QUEUE", "TERMINAL", "queue_for"]

DEFAULT_QUEUE = "lazy_stream"
TRACE_QUEUE = "lazy_trace"
EVENTS_QUEUE = "lazy_events"
TERMINAL = "end"

_QUEUE_OF_KIND = {"text": DEFAULT_QUEUE, "item": DEFAULT_QUEUE, "trace": TRACE_QUEUE}


def queue_for(kind: str) -> str:
    """Return the queue an event of ``kind`` goes to when no queue is named."""
    return _QUEUE_OF_KIND.get(kind, EVENTS_QUEUE)


class Event(NamedTuple):
    """One record of a session's stream. ``seq`` is the resume cursor.

    Immutable; a named tuple because readers build one per token.
    """

    seq: int
    sid: str
    queue: str
    kind: str
    ns: tuple[str, ...]
    data: Any
    ts: float

    @property
    def value(self) -> Any:
        """What the seed-compatible API returns for this event (``dequeue()`` items)."""
        if self.kind == "trace" and isinstance(self.data, dict) and "text" in self.data:
            return self.data["text"]
        return self.data

    def to_dict(self) -> dict[str, Any]:
        """Return the event as a JSON-ready dict (for SSE and the CLI)."""
        return {"seq": self.seq, "sid": self.sid, "queue": self.queue, "kind": self.kind,
                "ns": list(self.ns), "data": self.data, "ts": self.ts}
