"""``FunctionCall`` (one round of tool use) and ``FunctionCallAgent`` (rounds until an answer).

A round asks the model with the tool schemas; if it answers with tool calls, the calls run
in parallel (``_execute``) and the round returns the conversation extended with the
assistant message (``tool_calls``) and one ``tool`` message per call. If it answers with
text, the round returns that text. The agent repeats rounds until it gets text.

Streaming is the model's: with ``stream=True`` its visible tokens reach
``FileSystemQueue()`` as they arrive, and tool-call JSON never does. With
``return_trace=True`` the agent and its rounds write, to ``lazy_trace`` and in order: the
tool-call request, each tool's result, the round's messages, ..., the final answer.
"""
from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from ..executor import report_error
from ..llm._history import history_messages
from ..llm._tool_reply import seed_view
from ..module import ModuleBase
from ..queue import emit
from ..session import current_ns
from ._execute import run_tool_calls
from ._registry import RegisteredTool, resolve_tools

__all__ = ["FunctionCall", "FunctionCallAgent", "ToolCallLimitError"]

ToolSpecifier = str | Callable[..., Any] | RegisteredTool


class ToolCallLimitError(RuntimeError, ValueError):
    """The model still asked for tools when the agent's round limit (``max_retries``) ran out.

    Also a ``ValueError``, the error LazyLLM's agents raise in this case.
    """


def _as_messages(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if isinstance(value, dict) and "role" in value:
        return [dict(value)]
    if isinstance(value, (list, tuple)) and value and all(
            isinstance(m, dict) and "role" in m for m in value):
        return [dict(m) for m in value]
    raise TypeError(f"FunctionCall: input must be the user's question (str) or a list of "
                    f"OpenAI messages ({{'role': ..., 'content': ...}}), got {value!r}")


def _split_reply(reply: Any) -> tuple[Any, list[dict[str, Any]]]:
    """Return (content, tool calls) of what the model module returned."""
    if isinstance(reply, str):
        return reply, []
    if isinstance(reply, dict):
        return reply.get("content"), list(reply.get("tool_calls") or [])
    raise TypeError(f"FunctionCall: the model returned {type(reply).__name__} {reply!r}; "
                    f"expected the answer text or an assistant message dict with tool_calls "
                    f"(as OnlineChatModule and TrainableModule return)")


def _wire_call(call: Any) -> dict[str, Any]:
    """Return ``call`` as an OpenAI tool call whose arguments are a JSON string."""
    if hasattr(call, "model_dump"):   # an openai SDK object
        call = call.model_dump()
    if not isinstance(call, dict):
        raise TypeError(f"FunctionCall: the model returned tool call {call!r}; expected an "
                        f"OpenAI tool call dict {{'id', 'type', 'function': {{'name', 'arguments'}}}}")
    fn = dict(call.get("function") or {})
    args = fn.get("arguments")
    if args is None:
        args = "{}"
    elif not isinstance(args, str):
        args = json.dumps(args, ensure_ascii=False)
    # Raw-text formats may carry no id; the tool message must still point at its call.
    call_id = call.get("id") or f"call_{uuid.uuid4().hex[:24]}"
    return {"id": call_id, "type": "function", "function": {"name": fn.get("name") or "",
                                                            "arguments": args}}


def _is_streaming(llm: Any) -> bool:
    return bool(getattr(llm, "stream", False))


def _is_tracing(llm: Any) -> bool:
    return bool(getattr(llm, "return_trace", False))


class FunctionCall(ModuleBase):
    """One round of tool use: ask ``llm`` with the tools' schemas, run the calls it makes.

    ``llm``: a chat module (``OnlineChatModule``, ``TrainableModule``) or any callable
    ``llm(messages, tools=[schemas]) -> str | assistant message dict``. ``tools``: names
    registered with ``fc_register``, functions, or both. ``tool_timeout``: seconds one tool
    call may take (a tool's own ``fc_register(timeout=...)`` wins).

    Calling it with the question (str) or the conversation (OpenAI messages), and
    optionally LazyLLM's ``llm_chat_history`` (earlier turns, put before the input), returns
    the answer text when the model made no tool calls, else the conversation (history
    included) extended with the assistant message and the tool messages. Raises
    ``TypeError`` for other input, and whatever the model raises.
    """

    def __init__(self, llm: Callable[..., Any], tools: Iterable[ToolSpecifier], *,
                 tool_timeout: float | None = 60.0, return_trace: bool = False,
                 name: str | None = None, _prompt: str | None = None) -> None:
        super().__init__(return_trace=return_trace, name=name)
        if not callable(llm):
            raise TypeError(f"FunctionCall: llm must be a chat module such as "
                            f"lazystream.OnlineChatModule(...), got {llm!r}")
        if tool_timeout is not None and not (isinstance(tool_timeout, (int, float))
                                             and tool_timeout > 0):
            raise ValueError(f"FunctionCall: tool_timeout must be a positive number of "
                             f"seconds or None, got {tool_timeout!r}")
        self.llm = llm
        self._tools: dict[str, RegisteredTool] = {t.name: t for t in resolve_tools(tools)}
        self._schemas = [t.schema for t in self._tools.values()]
        self._tool_timeout = tool_timeout
        self._prompt = _prompt

    @property
    def tools(self) -> list[RegisteredTool]:
        """The tools offered to the model, in order."""
        return list(self._tools.values())

    def forward(self, input: Any,
                llm_chat_history: list[Any] | None = None) -> str | list[dict[str, Any]]:
        messages = history_messages(llm_chat_history, "FunctionCall") + _as_messages(input)
        if self._prompt and messages[0].get("role") != "system":
            messages.insert(0, {"role": "system", "content": self._prompt})
        reply = self.llm(messages, tools=self._schemas)
        content, raw_calls = _split_reply(reply)
        if not raw_calls:
            return content if content is not None else ""
        calls = [_wire_call(c) for c in raw_calls]
        trace = self.return_trace
        # Structured events are written only when someone watches (stream or trace), and
        # a streaming model has already written its own tool_call events.
        streaming = _is_streaming(self.llm)
        if trace and not _is_tracing(self.llm):
            emit("trace", {"text": str([*seed_view(calls), content]), "module": "FunctionCall",
                           "path": ".".join(current_ns()), "input": None,
                           "output": {"content": content, "tool_calls": seed_view(calls)},
                           "duration": 0.0, "error": None}, lenient=True)
        if trace and not streaming:
            for c in calls:
                # Same shape as a streaming model's tool_call events: arguments as sent.
                emit("tool_call", {"id": c["id"], "name": c["function"]["name"],
                                   "arguments": c["function"]["arguments"]})
        outcomes = run_tool_calls(calls, self._tools, timeout=self._tool_timeout,
                                  trace=trace, events=trace or streaming)
        assistant = {"role": "assistant", "content": content, "tool_calls": calls}
        return [*messages, assistant, *(o.message() for o in outcomes)]


class FunctionCallAgent(ModuleBase):
    """An agent that lets the model call tools until it answers; returns the answer text.

    ``llm``: a chat module (``OnlineChatModule``, ``TrainableModule``; with ``stream=True``
    its answer tokens stream to ``FileSystemQueue()``). ``tools``: registered names or
    functions. ``max_retries``: the most rounds (model requests) one call may take.
    ``return_trace``: trace the tool calls, their results, each round and the answer.
    ``stream``: LazyLLM's switch; the agent streams when ``llm`` streams, and
    ``stream=True`` with a non-streaming ``llm`` raises ``ValueError`` naming the fix.

    Raises ``ToolCallLimitError`` (and writes an ``error`` event) when the model still asks
    for tools after ``max_retries`` rounds.
    """

    _prompt: str | None = None   # a system prompt of the agent's own (ReactAgent's)

    def __init__(self, llm: Callable[..., Any], tools: Iterable[ToolSpecifier],
                 max_retries: int = 5, return_trace: bool = False, *,
                 tool_timeout: float | None = 60.0, stream: bool | None = None,
                 name: str | None = None) -> None:
        super().__init__(return_trace=return_trace, name=name)
        if stream and not _is_streaming(llm):
            # LazyLLM's `stream=True` on the agent: here the model module decides.
            raise ValueError(f"{type(self).__name__}(stream=True): the llm {llm!r} does not "
                             f"stream; create it with stream=True, e.g. "
                             f"OnlineChatModule(..., stream=True)")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 1:
            raise ValueError(f"{type(self).__name__}: max_retries must be an int >= 1 (the most "
                             f"model requests per question), got {max_retries!r}")
        self._max_retries = max_retries
        self.function_call = FunctionCall(llm, tools, tool_timeout=tool_timeout,
                                          return_trace=return_trace, _prompt=self._prompt)

    @property
    def tools(self) -> list[RegisteredTool]:
        """The tools offered to the model, in order."""
        return self.function_call.tools

    def forward(self, input: Any,
                llm_chat_history: list[Any] | None = None) -> str:
        """Answer ``input``, after LazyLLM's ``llm_chat_history`` (earlier turns) if given."""
        state: Any = self.function_call(input, llm_chat_history)
        for _ in range(self._max_retries - 1):
            if isinstance(state, str):
                return state
            state = self.function_call(state)
        if isinstance(state, str):
            return state
        asked = [m for m in state if m.get("role") == "assistant"][-1]["tool_calls"]
        names = ", ".join(c["function"]["name"] for c in asked)
        exc = ToolCallLimitError(
            f"{type(self).__name__}: the model still asked for tools ({names}) after "
            f"max_retries={self._max_retries} rounds; raise max_retries, or check the tool "
            f"results the model keeps retrying")
        report_error(exc)
        raise exc
