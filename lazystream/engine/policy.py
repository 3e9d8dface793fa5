"""What the scripted engine replies: requests, turns, scripts and the tokeniser.

A *policy* is any callable ``policy(request: Request) -> reply``. A reply is one of

* ``str`` — assistant text;
* ``Turn(content=..., tool_calls=[ToolCall(...)], reasoning_content=...)``;
* ``ToolCall(name, arguments)`` or a list of them — parallel tool calls, no text;
* a dict ``{"content", "tool_calls", "reasoning_content"}`` (tool calls as ``ToolCall``,
  ``{"name", "arguments"}`` or OpenAI ``{"function": {"name", "arguments"}}`` dicts);
* ``Deltas([...])`` — the exact ``choices[0].delta`` objects to stream, for reproducing a
  provider's quirks (streaming only).

A list of replies is a *script*: request *n* gets reply *n* (see ``Script``). A policy may
raise ``EngineError(status, message)`` to answer one request with an HTTP error.
"""
from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Deltas", "EngineError", "Policy", "Reply", "Request", "Script", "ToolCall", "Turn",
           "as_policy", "as_turn", "content_text", "echo", "tokenize"]

# CJK characters are one token each; words keep their leading whitespace (" get"), as the
# BPE tokenisers of chat models do; punctuation stands alone.
_TOKEN = re.compile(
    r"\s*[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uff00-\uffef]"
    r"|\s*[^\W_]+|\s*[^\w\s]|\s*_+|\s+")


def tokenize(text: str) -> list[str]:
    """Split ``text`` into word-ish tokens whose concatenation is exactly ``text``.

    ``"To get there."`` → ``["To", " get", " there", "."]``.
    """
    return _TOKEN.findall(text)


class EngineError(Exception):
    """Raised by a policy to answer a request with an HTTP error ``status``."""

    def __init__(self, status: int, message: str, *, type: str = "engine_error",
                 retry_after: float | None = None) -> None:
        if not isinstance(status, int) or not 400 <= status <= 599:
            raise ValueError(f"EngineError: status must be an HTTP error code 400-599, "
                             f"got {status!r}")
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.retry_after = retry_after


@dataclass(frozen=True)
class Request:
    """One chat-completion request as the policy sees it.

    ``params`` is the whole JSON body; ``number`` counts the engine's chat requests from 0.
    """

    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None
    model: str
    stream: bool
    params: dict[str, Any]
    number: int = 0

    @property
    def last_user(self) -> str:
        """The text of the last user message ('' if there is none)."""
        for message in reversed(self.messages):
            if message.get("role") == "user":
                return content_text(message.get("content"))
        return ""

    @property
    def tool_results(self) -> list[dict[str, Any]]:
        """The ``role: tool`` messages that end the conversation (the results to answer)."""
        results: list[dict[str, Any]] = []
        for message in reversed(self.messages):
            if message.get("role") != "tool":
                break
            results.append(message)
        return results[::-1]

    @property
    def tool_names(self) -> list[str]:
        """Names of the tools offered with the request."""
        return [t.get("function", {}).get("name", "") for t in self.tools or ()]


def content_text(content: Any) -> str:
    """Return the text of a message ``content`` (a string or a list of content parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return str(content)


@dataclass(frozen=True)
class ToolCall:
    """A tool call the engine makes. ``arguments``: a dict (sent as JSON) or a raw string."""

    name: str
    arguments: dict[str, Any] | str = field(default_factory=dict)
    id: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"ToolCall: name must be a non-empty string, got {self.name!r}")
        if not isinstance(self.arguments, (dict, str)):
            raise ValueError(f"ToolCall({self.name!r}): arguments must be a dict or a JSON "  # noqa: TRY004 - callers handle ValueError for every bad value
                             f"string, got {type(self.arguments).__name__}")

    @property
    def arguments_json(self) -> str:
        """The arguments as the JSON text that goes on the wire."""
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(self.arguments, ensure_ascii=False)

    def with_id(self) -> ToolCall:
        """Return this call with an id (a fresh ``call_…`` id if it had none)."""
        return self if self.id else ToolCall(self.name, self.arguments, f"call_{uuid.uuid4().hex[:24]}")


@dataclass(frozen=True)
class Turn:
    """One assistant reply: text, tool calls (optionally with text) and reasoning.

    ``tokens`` fixes the content's token boundaries exactly (their concatenation is the
    content); without it the content is split by ``tokenize``.
    """

    content: str | None = None
    tool_calls: Sequence[ToolCall] = ()
    reasoning_content: str | None = None
    tokens: Sequence[str] | None = None

    def __post_init__(self) -> None:
        calls = tuple(as_tool_call(c) for c in self.tool_calls or ())
        object.__setattr__(self, "tool_calls", calls)
        if self.tokens is not None:
            tokens = tuple(self.tokens)
            if not all(isinstance(t, str) for t in tokens):
                raise ValueError(f"Turn: tokens must be strings, got {tokens!r}")
            joined = "".join(tokens)
            if self.content is not None and self.content != joined:
                raise ValueError(f"Turn: content {self.content!r} differs from the joined "
                                 f"tokens {joined!r}; pass only one of them")
            object.__setattr__(self, "tokens", tokens)
            object.__setattr__(self, "content", joined)
        if self.content is not None and not isinstance(self.content, str):
            raise ValueError(f"Turn: content must be a string, got {self.content!r}")
        if self.reasoning_content is not None and not isinstance(self.reasoning_content, str):
            raise ValueError(f"Turn: reasoning_content must be a string, got "
                             f"{self.reasoning_content!r}")

    def content_tokens(self) -> list[str]:
        """The content split into the tokens the engine streams."""
        if self.tokens is not None:
            return list(self.tokens)
        return tokenize(self.content or "")


@dataclass(frozen=True)
class Deltas:
    """An exact stream: each item is one chunk's ``choices[0].delta`` (streaming only)."""

    items: Sequence[dict[str, Any]]
    finish_reason: str = "stop"

    def __post_init__(self) -> None:
        items = tuple(self.items)
        for item in items:
            if not isinstance(item, dict):
                raise ValueError(f"Deltas: each item must be a delta dict, got {item!r}")  # noqa: TRY004 - callers handle ValueError for every bad value
        object.__setattr__(self, "items", items)


Reply = str | Turn | ToolCall | Deltas | dict | list
Policy = Callable[[Request], Reply]


def as_tool_call(value: Any) -> ToolCall:
    """Normalise a ``ToolCall``, ``{"name","arguments"}`` or OpenAI tool-call dict."""
    if isinstance(value, ToolCall):
        return value
    if isinstance(value, dict):
        fn = value.get("function", value)
        if isinstance(fn, dict) and "name" in fn:
            args = fn.get("arguments", fn.get("parameters", {}))
            return ToolCall(fn["name"], args if args is not None else {}, value.get("id"))
    raise ValueError(f"not a tool call: {value!r}; use ToolCall(name, arguments) or "
                     f"{{'name': ..., 'arguments': {{...}}}}")


def as_turn(reply: Reply) -> Turn | Deltas:
    """Normalise what a policy returned. Raises ``ValueError`` for anything else."""
    if isinstance(reply, (Turn, Deltas)):
        return reply
    if isinstance(reply, str):
        return Turn(content=reply)
    if isinstance(reply, ToolCall):
        return Turn(tool_calls=(reply,))
    if isinstance(reply, (list, tuple)) and reply and all(
            isinstance(c, ToolCall) or (isinstance(c, dict) and ("function" in c or "name" in c))
            for c in reply):
        return Turn(tool_calls=tuple(reply))
    if isinstance(reply, dict):
        unknown = set(reply) - {"role", "content", "tool_calls", "reasoning_content"}
        if unknown:
            raise ValueError(f"policy reply dict has unknown keys {sorted(unknown)}; allowed: "
                             f"content, tool_calls, reasoning_content")
        return Turn(content=reply.get("content"), tool_calls=reply.get("tool_calls") or (),
                    reasoning_content=reply.get("reasoning_content"))
    raise ValueError(f"policy returned {reply!r}; return a str, Turn, ToolCall, a list of "
                     f"ToolCall, Deltas or a dict with content/tool_calls/reasoning_content")


class Script:
    """A policy that answers request *n* with ``turns[n]`` (cycling if ``loop``).

    When the script runs out, the request fails with HTTP 400 naming the script length.
    """

    def __init__(self, turns: Iterable[Reply], *, loop: bool = False) -> None:
        self.turns = [as_turn(t) for t in turns]
        if not self.turns:
            raise ValueError("Script: give at least one turn")
        self.loop = loop
        self._next = 0
        self._lock = threading.Lock()

    def __call__(self, request: Request) -> Turn | Deltas:
        with self._lock:
            n = self._next
            self._next += 1
        if self.loop:
            return self.turns[n % len(self.turns)]
        if n >= len(self.turns):
            raise EngineError(400, f"engine script exhausted: request {n + 1} but the script "
                                   f"has {len(self.turns)} turn(s); add turns or use "
                                   f"Script(turns, loop=True)", type="script_exhausted")
        return self.turns[n]


def echo(request: Request) -> str:
    """Policy: reply with the last user message, unchanged."""
    return request.last_user


def as_policy(policy: Policy | Iterable[Reply] | Reply | None) -> Policy:
    """Turn ``policy`` (callable, list of turns, single reply, or None = echo) into a callable."""
    if policy is None:
        return echo
    if isinstance(policy, (str, Turn, ToolCall, Deltas, dict)):
        return Script([policy], loop=True)
    if callable(policy):
        return policy
    if isinstance(policy, Iterable):
        return Script(policy)
    raise ValueError(f"Engine: policy must be a callable, a list of turns or a reply, "
                     f"got {policy!r}")
