"""lazystream events -> AG-UI events (the Agent User Interaction Protocol).

==================  ==============================================================
event               AG-UI events
==================  ==============================================================
run_start           RUN_STARTED {threadId, runId}
text                TEXT_MESSAGE_START (first token of a message), TEXT_MESSAGE_CONTENT
think               REASONING_START + REASONING_MESSAGE_START (first), REASONING_MESSAGE_CONTENT
message_end         TEXT_MESSAGE_END / REASONING_MESSAGE_END + REASONING_END if opened
tool_call_start     TOOL_CALL_START {toolCallId, toolCallName, parentMessageId}
tool_call_delta     TOOL_CALL_ARGS {delta}
tool_call           (START + ARGS if not streamed) TOOL_CALL_END
tool_result         TOOL_CALL_RESULT {messageId: "<call id>:result", content, role: tool}
status              CUSTOM {name: "status", value}
error               RUN_ERROR {message, code: the error type} (terminal)
run_end (ok)        its string ``output`` as one text message, if no text was streamed
run_end             RUN_FINISHED {result: output}; cancelled: outcome {type: cancelled}
==================  ==============================================================

``thread_id`` / ``run_id`` default to the session id and the run's id; the HTTP route
passes those of the client's ``RunAgentInput``. Events are dicts with AG-UI's camelCase
field names, ready for ``data: <json>`` over SSE.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from ...events import TERMINAL, Event
from ._messages import Messages

__all__ = ["AGUIProjector", "agui_events"]


class AGUIProjector:
    """Feed events in order; each ``feed`` returns the AG-UI events (dicts) they become."""

    def __init__(self, *, thread_id: str | None = None, run_id: str | None = None) -> None:
        self.thread_id, self.run_id = thread_id, run_id
        self._messages = Messages()
        self._started = False
        self._finished = False
        self._text: set[str] = set()
        self._reasoning: set[str] = set()
        self._streamed_tools: set[str] = set()
        self._wrote_text = False
        self._segment: dict[str, int] = {}   # message id -> how many times its parts were closed early

    @property
    def finished(self) -> bool:
        return self._finished

    def _ids(self, event: Event) -> dict[str, str]:
        return {"threadId": self.thread_id or event.sid, "runId": self.run_id or event.sid}

    def feed(self, event: Event) -> list[dict[str, Any]]:
        if self._finished:
            return []
        kind, data = event.kind, event.data
        out: list[dict[str, Any]] = []
        if not self._started:
            self._started = True
            if kind == "run_start" and self.run_id is None and isinstance(data, dict):
                self.run_id = str(data.get("run") or event.sid)
            out.append({"type": "RUN_STARTED", **self._ids(event)})
        if kind == "message_start":
            self._messages.start(event)
        elif kind == "text" and isinstance(data, str) and data:
            message_id = self._part_id(self._messages.of(event)[0])
            self._wrote_text = True
            if message_id not in self._text:
                self._text.add(message_id)
                out.append({"type": "TEXT_MESSAGE_START", "messageId": message_id, "role": "assistant"})
            out.append({"type": "TEXT_MESSAGE_CONTENT", "messageId": message_id, "delta": data})
        elif kind == "think" and isinstance(data, str) and data:
            message_id = self._part_id(self._messages.of(event)[0])
            reasoning_id = f"{message_id}:reasoning"
            if reasoning_id not in self._reasoning:
                self._reasoning.add(reasoning_id)
                out.append({"type": "REASONING_START", "messageId": reasoning_id})
                out.append({"type": "REASONING_MESSAGE_START", "messageId": reasoning_id, "role": "reasoning"})
            out.append({"type": "REASONING_MESSAGE_CONTENT", "messageId": reasoning_id, "delta": data})
        elif kind == "message_end":
            out.extend(self._close(self._part_id(self._messages.end(event))))
        elif kind == "tool_call_start":
            call_id = str(data["id"])
            self._streamed_tools.add(call_id)
            out.extend(self._interrupt(data.get("message")))
            out.append(self._tool_start(call_id, str(data["name"]), data.get("message")))
        elif kind == "tool_call_delta":
            if str(data["id"]) in self._streamed_tools and data.get("delta"):
                out.append({"type": "TOOL_CALL_ARGS", "toolCallId": str(data["id"]), "delta": str(data["delta"])})
        elif kind == "tool_call":
            call_id = str(data["id"])
            if call_id not in self._streamed_tools:
                out.extend(self._interrupt(data.get("message")))
                out.append(self._tool_start(call_id, str(data["name"]), data.get("message")))
                arguments = data.get("arguments")
                text = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
                if text:
                    out.append({"type": "TOOL_CALL_ARGS", "toolCallId": call_id, "delta": text})
            self._streamed_tools.discard(call_id)
            out.append({"type": "TOOL_CALL_END", "toolCallId": call_id})
        elif kind == "tool_result":
            call_id = str(data["id"])
            content = data.get("content")
            if data.get("error"):
                content = f"error: {data['error']}"
            out.append({"type": "TOOL_CALL_RESULT", "messageId": f"{call_id}:result", "toolCallId": call_id,
                        "content": content if isinstance(content, str) else json.dumps(content, ensure_ascii=False),
                        "role": "tool"})
        elif kind == "status":
            out.append({"type": "CUSTOM", "name": "status", "value": data})
        elif kind == "error" and isinstance(data, dict):
            out.extend(self._close_all())
            out.append({"type": "RUN_ERROR", "message": str(data.get("message", "")),
                        "code": str(data.get("type", "Error"))})
            self._finished = True
        elif kind in ("run_end", TERMINAL) and isinstance(data, dict):
            out.extend(self._close_all())
            status = str(data.get("status", "ok"))
            if status == "error":
                error = data.get("error") or {}
                out.append({"type": "RUN_ERROR", "message": str(error.get("message", "the run failed")),
                            "code": str(error.get("type", "Error"))})
            else:
                output = data.get("output")
                if status == "ok" and not self._wrote_text and isinstance(output, str) and output:
                    message_id = f"{data.get('run') or event.sid}:output"   # a module that streamed no text
                    out += [{"type": "TEXT_MESSAGE_START", "messageId": message_id, "role": "assistant"},
                            {"type": "TEXT_MESSAGE_CONTENT", "messageId": message_id, "delta": output},
                            {"type": "TEXT_MESSAGE_END", "messageId": message_id}]
                finished: dict[str, Any] = {"type": "RUN_FINISHED", **self._ids(event)}
                if status == "cancelled":
                    finished["outcome"] = {"type": "cancelled"}
                elif data.get("output") is not None:
                    finished["result"] = data["output"]
                out.append(finished)
            self._finished = True
        return out

    def _part_id(self, message_id: str) -> str:
        n = self._segment.get(message_id, 0)
        return message_id if n == 0 else f"{message_id}:{n}"

    def _interrupt(self, message: Any) -> list[dict[str, Any]]:
        """Close the message's open text/reasoning before a tool call: AG-UI does not nest them.
        Text the message writes after the call continues under a new id (``<id>:1``)."""
        if not message:
            return []
        message_id = str(message)
        part = self._part_id(message_id)
        if part not in self._text and f"{part}:reasoning" not in self._reasoning:
            return []
        self._segment[message_id] = self._segment.get(message_id, 0) + 1
        return self._close(part)

    def _tool_start(self, call_id: str, name: str, message: Any) -> dict[str, Any]:
        start = {"type": "TOOL_CALL_START", "toolCallId": call_id, "toolCallName": name}
        if message:
            start["parentMessageId"] = str(message)
        return start

    def _close(self, message_id: str) -> list[dict[str, Any]]:
        out = []
        if message_id in self._text:
            self._text.discard(message_id)
            out.append({"type": "TEXT_MESSAGE_END", "messageId": message_id})
        reasoning_id = f"{message_id}:reasoning"
        if reasoning_id in self._reasoning:
            self._reasoning.discard(reasoning_id)
            out.append({"type": "REASONING_MESSAGE_END", "messageId": reasoning_id})
            out.append({"type": "REASONING_END", "messageId": reasoning_id})
        return out

    def _close_all(self) -> list[dict[str, Any]]:
        out = []
        for message_id in sorted(self._text):
            out.append({"type": "TEXT_MESSAGE_END", "messageId": message_id})
        for reasoning_id in sorted(self._reasoning):
            out.append({"type": "REASONING_MESSAGE_END", "messageId": reasoning_id})
            out.append({"type": "REASONING_END", "messageId": reasoning_id})
        self._text.clear()
        self._reasoning.clear()
        return out


def agui_events(events: Iterable[Event], *, thread_id: str | None = None,
                run_id: str | None = None) -> Iterator[dict[str, Any]]:
    """Project ``events`` (one run's session, in order) onto AG-UI events."""
    projector = AGUIProjector(thread_id=thread_id, run_id=run_id)
    for event in events:
        yield from projector.feed(event)
        if projector.finished:
            return
