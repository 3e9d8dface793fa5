"""The event envelope: everything the framework writes to a queue is an ``Event``.

``Event(seq, sid, queue, kind, ns, data, ts)``. The kinds, in the order one run writes
them (docs/events.md has a picture of one agent run). ``text``/``item`` go to
``lazy_stream``, ``trace`` to ``lazy_trace``, ``cancel`` to ``lazy_control``, every other
kind to ``lazy_events``.

Lifecycle
  ``run_start``        ``{"run", "name", "input"}``: a run began (``input`` JSON, lenient)
  ``run_end``          ``{"run", "status": "ok"|"error"|"cancelled", "error": {"type",
                       "message"}|null, "output": JSON|null, "usage": totals|null}``
  ``idle``             ``{"run"}``: the last open run of a thread's implicit session ended;
                       ``tail`` stops here (a later run may follow in the same session)
  ``end``              ``{"status": "ok"|"error"|"cancelled", "error": …}``: the session's
                       terminal event, exactly one, last
  ``error``            ``{"type", "message"}``: a producer failed (in the run's session,
                       before its ``run_end``)
  ``cancel``           ``{"pid"}`` on ``lazy_control``: someone asked the session's runs to
                       stop (``lazystream.cancel``)

One model call (a message; ``text``/``think`` belong to the open message of the same
``(sid, ns)``, every other kind names its message)
  ``message_start``    ``{"id", "run", "role": "assistant", "model"}``
  ``text``             a token string (what ``FileSystemQueue().dequeue()`` returns)
  ``think``            a reasoning-token string
  ``tool_call_start``  ``{"id", "name", "index", "message"}``: the model began a tool call
  ``tool_call_delta``  ``{"id", "delta"}``: a piece of the call's arguments JSON text
  ``tool_call``        ``{"id", "name", "arguments", "message"}``: the complete call
                       (``arguments`` parsed JSON, the raw text if it does not parse)
  ``usage``            ``{"prompt_tokens", "completion_tokens", "total_tokens", "message"}``
  ``message_end``      ``{"id", "finish_reason": "stop"|"tool_calls"|"length"|
                       "cancelled"|"error"}``

Tools, traces, the rest
  ``tool_start``       ``{"id", "name", "arguments"}``: a tool began running
  ``tool_result``      ``{"id", "name", "content", "error"}`` (``content`` stored leniently)
  ``trace``            ``{"text", "module", "path", "input", "output", "duration", "error"}``;
                       ``text`` is what the seed prints
  ``status``           a status message string
  ``item``             a JSON value a user enqueued on a non-default queue

Any other short lowercase kind is allowed (``streamify`` writes ``prediction``,
``lm_start``, ``lm_end``). ``data`` is JSON only: nothing read back is unpickled or eval'd.
"""
from __future__ import annotations

from typing import Any, NamedTuple

__all__ = [
    "CONTROL_QUEUE",
    "DEFAULT_QUEUE",
    "EVENTS_QUEUE",
    "IDLE",
    "KINDS",
    "TERMINAL",
    "TRACE_QUEUE",
    "Event",
    "queue_for",
]

DEFAULT_QUEUE = "lazy_stream"
TRACE_QUEUE = "lazy_trace"
EVENTS_QUEUE = "lazy_events"
TERMINAL = "end"
IDLE = "idle"   # not terminal: an implicit session's runs have all ended (readers may stop)
CONTROL_QUEUE = "lazy_control"

# The documented kinds (see the module docstring), lifecycle first.
KINDS = ("run_start", "run_end", "idle", "end", "error", "cancel",
         "message_start", "text", "think", "tool_call_start", "tool_call_delta", "tool_call",
         "usage", "message_end", "tool_start", "tool_result", "trace", "status", "item")

_QUEUE_OF_KIND = {"text": DEFAULT_QUEUE, "item": DEFAULT_QUEUE, "trace": TRACE_QUEUE, "cancel": CONTROL_QUEUE}


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
