"""lazystream events -> OpenAI Chat Completions (``chat.completion.chunk`` and ``chat.completion``).

The agent answers as one assistant message:

==================  ==============================================================
event               chunk
==================  ==============================================================
first event         ``delta: {role: "assistant", content: ""}``
text                ``delta: {content}`` (text of a later model call after earlier
                    text is preceded by a blank line, so the answer stays readable)
think               ``delta: {reasoning_content}`` (the field DeepSeek, vLLM and
                    Open WebUI read)
run_end (ok)        its ``output`` as ``content`` if it is a string and no text was
                    streamed (a module that does not stream still answers); then
run_end / end       ``finish_reason``: "stop", or "length" if the last model call
                    was cut; then, with ``include_usage``, a chunk with the run's
                    ``usage`` totals and no choices
error / run_end     ``{"error": {"message", "type"}}``: the ``openai`` SDK raises it
 (error/cancelled)  as ``APIError``
==================  ==============================================================

Tool calls the agent makes are executed by the agent, so they are not projected as
``tool_calls`` (a client would try to run them); the session's own stream has them.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from ...events import TERMINAL, Event
from ._messages import UsageTotals

__all__ = ["OpenAIProjector", "openai_chunks", "openai_completion"]


class OpenAIProjector:
    """Feed events in order; each ``feed`` returns the chunk dicts they become."""

    def __init__(self, *, model: str, completion_id: str | None = None, created: int | None = None,
                 include_usage: bool = False) -> None:
        self.model = model
        self.completion_id = completion_id
        self.created = created
        self.include_usage = include_usage
        self._started = False
        self._finished = False
        self._text_message: str | None = None   # the ns+message that wrote the last text
        self._wrote_text = False
        self._finish_reason = "stop"
        self._usage = UsageTotals()
        self._message_of: dict[tuple[str, ...], str] = {}

    @property
    def finished(self) -> bool:
        return self._finished

    def _chunk(self, delta: dict[str, Any] | None, finish_reason: str | None = None) -> dict[str, Any]:
        choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish_reason,
                                             "logprobs": None}]
        return {"id": self.completion_id, "object": "chat.completion.chunk", "created": self.created,
                "model": self.model, "choices": choices}

    def feed(self, event: Event) -> list[dict[str, Any]]:
        if self._finished:
            return []
        out: list[dict[str, Any]] = []
        if not self._started:
            self._started = True
            self.completion_id = self.completion_id or f"chatcmpl-{event.sid}"
            self.created = self.created if self.created is not None else int(event.ts)
            out.append(self._chunk({"role": "assistant", "content": ""}))
        kind, data = event.kind, event.data
        if kind == "message_start" and isinstance(data, dict):
            self._message_of[event.ns] = str(data.get("id"))
        elif kind == "text" and isinstance(data, str) and data:
            message = self._message_of.get(event.ns, "") + "|" + "/".join(event.ns)
            if self._wrote_text and message != self._text_message:
                data = "\n\n" + data
            self._text_message, self._wrote_text = message, True
            out.append(self._chunk({"content": data}))
        elif kind == "think" and isinstance(data, str) and data:
            out.append(self._chunk({"reasoning_content": data}))
        elif kind == "usage":
            self._usage.add(data)
        elif kind == "message_end" and isinstance(data, dict):
            reason = data.get("finish_reason")
            if reason in ("stop", "length"):
                self._finish_reason = reason
        elif kind == "error" and isinstance(data, dict):
            out.append({"error": {"message": f"{data.get('type', 'Error')}: {data.get('message', '')}",
                                  "type": "run_error", "code": str(data.get("type", "Error"))}})
            self._finished = True
        elif kind in ("run_end", TERMINAL) and isinstance(data, dict):
            status = str(data.get("status", "ok"))
            usage = self._usage.final(data.get("usage"))
            self._finished = True
            if status == "ok":
                output = data.get("output")
                if not self._wrote_text and isinstance(output, str) and output:
                    out.append(self._chunk({"content": output}))   # a module that streamed no text
                out.append(self._chunk({}, self._finish_reason))
                if self.include_usage:
                    usage = usage or {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
                    out.append({**self._chunk(None), "usage": usage})
            else:
                error = data.get("error") or {}
                message = "the run was cancelled" if status == "cancelled" else str(error.get("message", ""))
                out.append({"error": {"message": message, "type": "run_cancelled" if status == "cancelled"
                                      else "run_error", "code": str(error.get("type", status))}})
        return out


def openai_chunks(events: Iterable[Event], *, model: str, include_usage: bool = False) -> Iterator[dict[str, Any]]:
    """Project ``events`` (one run's session, in order) onto ``chat.completion.chunk`` dicts."""
    projector = OpenAIProjector(model=model, include_usage=include_usage)
    for event in events:
        yield from projector.feed(event)
        if projector.finished:
            return


def openai_completion(events: Iterable[Event], *, model: str) -> dict[str, Any]:
    """Project ``events`` onto one ``chat.completion`` dict (the non-streaming answer).

    Raises ``RuntimeError`` with the run's error if it failed or was cancelled.
    """
    content, reasoning, finish, usage, first = [], [], "stop", None, None
    for chunk in openai_chunks(events, model=model, include_usage=True):
        if "error" in chunk:
            raise RuntimeError(chunk["error"]["message"])
        first = first or chunk
        if chunk.get("usage"):
            usage = chunk["usage"]
        for choice in chunk["choices"]:
            delta = choice["delta"]
            content.append(delta.get("content") or "")
            reasoning.append(delta.get("reasoning_content") or "")
            finish = choice["finish_reason"] or finish
    if first is None:
        raise RuntimeError("openai_completion: the session has no events")
    message: dict[str, Any] = {"role": "assistant", "content": "".join(content)}
    if any(reasoning):
        message["reasoning_content"] = "".join(reasoning)
    return {"id": first["id"], "object": "chat.completion", "created": first["created"], "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
            "usage": usage}
