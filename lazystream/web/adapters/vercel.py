"""lazystream events -> Vercel AI SDK UI message stream, protocol v1 (``useChat``).

One stream is one assistant UI message (the run). The projection:

==================  ==============================================================
event               chunks
==================  ==============================================================
first event         ``start`` {messageId: the run id (or the session id)}
text                ``text-start`` (first token of a message), ``text-delta``
think               ``reasoning-start`` (first), ``reasoning-delta``
message_end         ``text-end`` / ``reasoning-end`` for the parts it opened
tool_call_start     ``tool-input-start`` {toolCallId, toolName}
tool_call_delta     ``tool-input-delta`` {toolCallId, inputTextDelta}
tool_call           ``tool-input-available`` {toolCallId, toolName, input}
tool_result         ``tool-output-available`` {output} or ``tool-output-error``
status              ``data-status`` {data: the message, transient: true}
error               ``error`` {errorText: "Type: message"}
run_end (ok)        its string ``output`` as one text part, if no text was streamed
run_end / end       ``finish`` {finishReason, messageMetadata: {usage, status}};
                    cancelled: ``abort``
==================  ==============================================================

Traces, usage per message and unknown kinds are not part of this format (the session's
own event stream has them). Over HTTP each chunk is ``data: <json>`` and the stream ends
with ``data: [DONE]``; responses carry ``x-vercel-ai-ui-message-stream: v1``.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from ...events import TERMINAL, Event
from ._messages import Messages, UsageTotals

__all__ = ["HEADERS", "VercelProjector", "vercel_chunks"]

HEADERS = {"x-vercel-ai-ui-message-stream": "v1"}
_FINISH = {"ok": "stop", "error": "error"}


class VercelProjector:
    """Feed events in order; each ``feed`` returns the chunks (dicts) they become."""

    def __init__(self) -> None:
        self._messages = Messages()
        self._started = False
        self._finished = False
        self._text: set[str] = set()          # open text parts (by message id)
        self._reasoning: set[str] = set()     # open reasoning parts
        self._tools: dict[str, str] = {}      # tool calls whose input is streaming: id -> name
        self._usage = UsageTotals()
        self._run_usage: Any = None
        self._wrote_text = False

    @property
    def finished(self) -> bool:
        return self._finished

    def feed(self, event: Event) -> list[dict[str, Any]]:
        if self._finished:
            return []
        out: list[dict[str, Any]] = []
        if not self._started:
            self._started = True
            run = event.data.get("run") if event.kind == "run_start" and isinstance(event.data, dict) else None
            out.append({"type": "start", "messageId": str(run or event.sid)})
        kind, data = event.kind, event.data
        if kind == "message_start":
            self._messages.start(event)
        elif kind in ("text", "think"):
            if isinstance(data, str) and data:
                message_id, _ = self._messages.of(event)
                part, open_parts = ("text", self._text) if kind == "text" else ("reasoning", self._reasoning)
                part_id = message_id if kind == "text" else f"{message_id}:reasoning"
                self._wrote_text = self._wrote_text or kind == "text"
                if part_id not in open_parts:
                    open_parts.add(part_id)
                    out.append({"type": f"{part}-start", "id": part_id})
                out.append({"type": f"{part}-delta", "id": part_id, "delta": data})
        elif kind == "message_end":
            out.extend(self._close_parts(self._messages.end(event)))
        elif kind == "tool_call_start":
            call_id, name = str(data["id"]), str(data["name"])
            self._tools[call_id] = name
            out.append({"type": "tool-input-start", "toolCallId": call_id, "toolName": name})
        elif kind == "tool_call_delta":
            call_id = str(data["id"])
            if call_id in self._tools and data.get("delta"):
                out.append({"type": "tool-input-delta", "toolCallId": call_id, "inputTextDelta": str(data["delta"])})
        elif kind == "tool_call":
            call_id = str(data["id"])
            self._tools.pop(call_id, None)
            out.append({"type": "tool-input-available", "toolCallId": call_id, "toolName": str(data["name"]),
                        "input": data.get("arguments")})
        elif kind == "tool_result":
            call_id = str(data["id"])
            if data.get("error"):
                out.append({"type": "tool-output-error", "toolCallId": call_id, "errorText": str(data["error"])})
            else:
                out.append({"type": "tool-output-available", "toolCallId": call_id, "output": data.get("content")})
        elif kind == "usage":
            self._usage.add(data)
        elif kind == "status":
            out.append({"type": "data-status", "data": data, "transient": True})
        elif kind == "error" and isinstance(data, dict):
            out.append({"type": "error", "errorText": f"{data.get('type', 'Error')}: {data.get('message', '')}"})
        elif kind == "run_end" and isinstance(data, dict):
            self._run_usage = data.get("usage")
            output = data.get("output")
            if data.get("status") == "ok" and not self._wrote_text and isinstance(output, str) and output:
                part_id = f"{data.get('run')}:output"   # a module that streamed no text still answers
                out += [{"type": "text-start", "id": part_id}, {"type": "text-delta", "id": part_id, "delta": output},
                        {"type": "text-end", "id": part_id}]
            out.extend(self._finish(str(data.get("status", "ok"))))
        elif kind == TERMINAL:
            out.extend(self._finish(str(data.get("status", "ok")) if isinstance(data, dict) else "ok"))
        return out

    def _close_parts(self, message_id: str) -> list[dict[str, Any]]:
        out = []
        if message_id in self._text:
            self._text.discard(message_id)
            out.append({"type": "text-end", "id": message_id})
        reasoning = f"{message_id}:reasoning"
        if reasoning in self._reasoning:
            self._reasoning.discard(reasoning)
            out.append({"type": "reasoning-end", "id": reasoning})
        return out

    def _finish(self, status: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for part_id in sorted(self._reasoning):
            out.append({"type": "reasoning-end", "id": part_id})
        for part_id in sorted(self._text):
            out.append({"type": "text-end", "id": part_id})
        self._text.clear()
        self._reasoning.clear()
        self._finished = True
        if status == "cancelled":
            out.append({"type": "abort"})
        else:
            out.append({"type": "finish", "finishReason": _FINISH.get(status, "other"),
                        "messageMetadata": {"status": status, "usage": self._usage.final(self._run_usage)}})
        return out


def vercel_chunks(events: Iterable[Event]) -> Iterator[dict[str, Any]]:
    """Project ``events`` (one run's session, in order) onto UI message stream chunks."""
    projector = VercelProjector()
    for event in events:
        yield from projector.feed(event)
        if projector.finished:
            return


def sse(chunk: dict[str, Any]) -> bytes:
    """One chunk as the SSE message the AI SDK reads."""
    return b"data: " + json.dumps(chunk, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"
