"""``OnlineChatModule``: a chat model behind any OpenAI-compatible API, as a module.

It talks through the official ``openai`` SDK (one client per module), so it works with
OpenAI and with vLLM, llama.cpp's server, Ollama, the bundled engine… With
``stream=True`` each call is a message: ``message_start``, every content delta as a
``text`` event as it arrives (``FileSystemQueue().dequeue()`` returns the pieces in
order), reasoning deltas as ``think``, tool calls as ``tool_call_start`` /
``tool_call_delta`` while their arguments stream and ``tool_call`` when complete, the
``usage``, then ``message_end`` with the finish reason (see ``lazystream.events``). With
``stream=False`` nothing is written anywhere; usage still adds to the run's totals.

Cancellation (``lazystream.cancel``, ``future.cancel()``, a reader that left): the module
checks its run at every chunk and before every request, and the run's cancel closes the
HTTP stream's socket at once, so a stalled model does not delay the stop.
"""
from __future__ import annotations

import json
import logging
import math
import os
import threading
import uuid
from typing import Any

import openai

from ..engine.rawtext import get_format
from ..module import ModuleBase
from ..runs import Run, RunCancelled, current_run, report_error
from ..session import current_ns, current_sid, ns_scope
from ._closer import http_client, stoppable, stream_closer
from ._history import history_messages
from ._rawtext_parser import RawToolCallParser
from ._tool_reply import reply_trace_text
from ._toolcall_stream import ToolCallAssembler
from .errors import LLMConfigError, LLMError, LLMStreamError, LLMTimeoutError

__all__ = ["OnlineChatModule"]

_DEFAULT_TIMEOUT = 120.0
_MAX_RETRY_DELAY = 30.0
_log = logging.getLogger("lazystream.llm")


class _Incomplete(Exception):
    """The stream ended without a finish reason (the connection closed early)."""


class OnlineChatModule(ModuleBase):
    """A chat model over an OpenAI-compatible API.

    ``model``, ``base_url`` and ``api_key`` fall back to ``LAZYSTREAM_MODEL``,
    ``OPENAI_BASE_URL`` and ``OPENAI_API_KEY``. ``system_prompt`` is prepended unless the
    messages start with a system message. ``max_retries``: retries of a connection error,
    5xx or 429 that happens before the first token, with exponential backoff from
    ``retry_backoff`` seconds (or the server's ``Retry-After``). ``timeout``: seconds to
    wait for the server to answer or send the next chunk. ``tool_call_format``:
    ``"internlm2"``/``"qwen"`` to parse tool calls a raw-text model writes in its text.
    Other keyword arguments (``temperature``, ``max_tokens``, …) go to every request.

    Calling it with a string (the user message) or a list of OpenAI messages, and
    optionally ``tools=[…]``, returns the assistant text, or — when the model called
    tools — the assistant message dict ``{"role", "content", "tool_calls"}``.
    Raises ``LLMConfigError`` at construction for missing settings, and ``LLMError``
    (``LLMTimeoutError``, ``LLMStreamError``) when a request fails.
    """

    def __init__(self, model: str | None = None, base_url: str | None = None,
                 api_key: str | None = None, stream: bool = False, return_trace: bool = False,
                 system_prompt: str | None = None, max_retries: int = 2,
                 timeout: float | None = _DEFAULT_TIMEOUT, *, tool_call_format: str | None = None,
                 retry_backoff: float = 0.5, name: str | None = None, **params: Any) -> None:
        super().__init__(return_trace=return_trace, name=name)
        model = model or os.environ.get("LAZYSTREAM_MODEL")
        if not model:
            raise LLMConfigError(f"{type(self).__name__}: no model given; pass model='…' or set "
                                 f"LAZYSTREAM_MODEL (e.g. LAZYSTREAM_MODEL=gpt-4o-mini)")
        api_key = api_key or os.environ.get("OPENAI_API_KEY")
        if not api_key:
            raise LLMConfigError(f"{type(self).__name__}({model!r}): no API key; pass api_key='…' "
                                 f"or set OPENAI_API_KEY (any non-empty string for local servers; "
                                 f"the server URL comes from base_url= or OPENAI_BASE_URL)")
        base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise LLMConfigError(f"{type(self).__name__}: max_retries must be an int >= 0, "
                                 f"got {max_retries!r}")
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                    or not math.isfinite(timeout) or timeout <= 0):
            raise LLMConfigError(f"{type(self).__name__}: timeout must be seconds > 0 or None, "
                                 f"got {timeout!r}")
        if isinstance(retry_backoff, bool) or not isinstance(retry_backoff, (int, float)) \
                or not math.isfinite(retry_backoff) or retry_backoff < 0:
            raise LLMConfigError(f"{type(self).__name__}: retry_backoff must be seconds >= 0, "
                                 f"got {retry_backoff!r}")
        if not isinstance(system_prompt, (str, type(None))):
            raise LLMConfigError(f"{type(self).__name__}: system_prompt must be a str, "
                                 f"got {system_prompt!r}")
        if "messages" in params or "stream_options" in params:
            raise LLMConfigError(f"{type(self).__name__}: pass messages as the call's input and "
                                 f"leave stream_options to the module, got {sorted(params)}")
        self._tool_call_format = get_format(tool_call_format) if tool_call_format else None
        self._model = model
        self._stream = bool(stream)
        self._system_prompt = system_prompt
        self._max_retries = max_retries
        self._timeout = timeout
        self._retry_backoff = float(retry_backoff)
        self._params = params
        # The SDK's own retries are off: ours know whether a token was already streamed.
        self._client = openai.OpenAI(api_key=api_key, base_url=base_url, timeout=timeout,
                                     http_client=http_client(),
                                     max_retries=0)

    @property
    def model(self) -> str:
        return self._model

    @property
    def base_url(self) -> str:
        return str(self._client.base_url)

    @property
    def stream(self) -> bool:
        return self._stream

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} model={self._model!r} base_url={self.base_url!r}>"

    # -- the call ----------------------------------------------------------------------
    def forward(self, input: str | list[dict[str, Any]] | dict[str, Any], *,
                tools: list[dict[str, Any]] | None = None,
                llm_chat_history: list[Any] | None = None, **params: Any) -> str | dict[str, Any]:
        """Send ``input`` (and ``tools``); return the text or the tool-call message.

        ``llm_chat_history``: earlier turns, sent between the system prompt and ``input``,
        in LazyLLM's formats (see ``history_messages``). ``params`` override the module's
        request parameters for this call.
        """
        messages = self._messages(input)
        if llm_chat_history:
            at = 1 if messages and messages[0].get("role") == "system" else 0
            messages[at:at] = history_messages(llm_chat_history, self.name)
        request = {"model": self._model, "messages": messages}
        if self._params:
            request.update(self._params)
        if params:
            request.update(params)
        if tools:
            if not isinstance(tools, (list, tuple)) or not all(isinstance(t, dict) for t in tools):
                raise LLMConfigError(f"{self.name}: tools must be a list of OpenAI tool schemas "
                                     f"(dicts), got {str(tools)[:80]!r}")
            request["tools"] = list(tools)
        if self._stream:
            return self._streamed(request)
        return self._complete(request)

    def _messages(self, input: Any) -> list[dict[str, Any]]:
        if isinstance(input, str):
            messages = [{"role": "user", "content": input}]
        elif isinstance(input, dict) and "role" in input:
            messages = [input]
        elif isinstance(input, (list, tuple)) and all(isinstance(m, dict) and "role" in m
                                                      for m in input):
            messages = list(input)
        else:
            raise LLMConfigError(f"{self.name}: input must be a str or a list of OpenAI messages "
                                 f"({{'role': …, 'content': …}}), got {type(input).__name__} "
                                 f"{str(input)[:80]!r}")
        if self._system_prompt and (not messages or messages[0].get("role") != "system"):
            messages.insert(0, {"role": "system", "content": self._system_prompt})
        return messages

    def _complete(self, request: dict[str, Any]) -> str | dict[str, Any]:
        """The non-streaming call: the SDK call plus retries; writes nothing."""
        run = current_run()
        attempt = 0
        while True:
            _check(run)
            try:
                with stoppable(run):   # a cancel ends the request at once
                    response = self._client.chat.completions.create(**request)
                break
            except openai.APIError as e:
                _check(run)
                attempt = self._retry_or_raise(e, attempt, run=run)
        _check(run)
        if run is not None and response.usage is not None:
            run.add_usage(_usage_dict(response.usage))
        if not response.choices:
            raise LLMError(f"{self.name}: {self.base_url} answered with no choices "
                           f"(model {self._model!r}): {str(response)[:200]}")
        message = response.choices[0].message
        content = message.content or ""
        calls = [c.model_dump(include={"id", "type", "function"}) for c in message.tool_calls or ()]
        if self._tool_call_format is not None:
            parser = RawToolCallParser(self._tool_call_format)
            content = parser.feed(content) + parser.finish()
            calls += parser.calls
        if calls:
            return {"role": "assistant", "content": content, "tool_calls": calls}
        return content

    def _streamed(self, request: dict[str, Any]) -> str | dict[str, Any]:
        """The streaming call, as one message: message_start … message_end.

        Readers attribute bare ``text`` to the message open at the same ``(sid, ns)``; when
        this module already streams a message there (called again concurrently), this
        call's events get its message id appended to their ``ns``.
        """
        message = f"msg_{uuid.uuid4().hex}"
        key = (current_sid(), current_ns())
        with _open_lock:
            clash = key in _open_messages
            if not clash:
                _open_messages.add(key)
        try:
            with ns_scope(message) if clash else _nothing():
                return self._message(request, message)
        finally:
            if not clash:
                with _open_lock:
                    _open_messages.discard(key)

    def _message(self, request: dict[str, Any], message: str) -> str | dict[str, Any]:
        request["stream"] = True
        request["stream_options"] = {"include_usage": True}
        run = current_run()
        self.emit("message_start", {"id": message, "run": run.id if run is not None else None,
                                    "role": "assistant", "model": self._model})
        try:
            with stoppable(run):   # a cancel ends this thread's reads, even before the headers
                state = self._attempts(request, run, message)
        except BaseException as e:
            cancelled = isinstance(e, RunCancelled) or (run is not None and run.cancelled.is_set())
            self.emit("message_end", {"id": message, "finish_reason": "cancelled" if cancelled else "error"})
            if cancelled:
                if isinstance(e, RunCancelled):
                    raise
                raise RunCancelled(f"{self.name}: run {run.id} was cancelled") from e  # type: ignore[union-attr]
            if isinstance(e, LLMError):
                report_error(e)   # after message_end: a reader sees the message close first
            raise
        finish = state.finish_reason or "stop"
        if finish == "stop" and state.parser is not None and state.parser.calls:
            finish = "tool_calls"   # a raw-text model's calls: the same turn as OpenAI's
        self.emit("message_end", {"id": message, "finish_reason": finish})
        return state.result()

    def _attempts(self, request: dict[str, Any], run: Run | None, message: str) -> _StreamState:
        attempt = 0
        while True:
            _check(run)
            state = _StreamState(self._tool_call_format, self, message)
            try:
                self._run_stream(request, state, run)
                return state
            except (openai.APIError, _Incomplete) as e:
                _check(run)
                partial = "".join(state.text)
                if state.streamed and not isinstance(e, openai.APITimeoutError):
                    raise _caused(LLMStreamError(
                        f"{self.name}: the stream from {self.base_url} broke after "
                        f"{len(partial)} characters were streamed ({_describe(e)}); the partial "
                        f"text stays in the stream and is not retried",
                        status_code=getattr(e, "status_code", None), partial_text=partial), e) from e
                try:
                    attempt = self._retry_or_raise(e, attempt, partial, run=run)
                except LLMError as final:
                    raise _caused(final, e) from e

    def _run_stream(self, request: dict[str, Any], state: _StreamState, run: Run | None) -> None:
        stream = self._client.chat.completions.create(**request)
        emit_text, emit = self.stream_output, self.emit
        parser = state.parser
        text, assembler = state.text, state.assembler
        cancelled = run.cancelled if run is not None else _NEVER
        finished = False
        with stream, (run.on_cancel(stream_closer(stream)) if run is not None else _nothing()):
            for chunk in stream:
                if cancelled.is_set():
                    raise RunCancelled(f"{self.name}: run {run.id} was cancelled")  # type: ignore[union-attr]
                usage = chunk.usage
                if usage is not None:
                    state.usage = usage
                if not chunk.choices:
                    continue
                choice = chunk.choices[0]
                delta = choice.delta
                extra = delta.model_extra
                if extra:
                    reasoning = extra.get("reasoning_content") or extra.get("reasoning")
                    if reasoning:
                        state.streamed = True
                        emit("think", reasoning)
                content = delta.content
                if content:
                    state.streamed = True
                    if parser is not None:
                        content = parser.feed(content)
                    if content:
                        text.append(content)
                        emit_text(content)
                if delta.tool_calls:
                    state.streamed = True
                    assembler.feed(delta.tool_calls)
                if choice.finish_reason:
                    finished = True
                    state.finish_reason = choice.finish_reason
        if not finished:
            raise _Incomplete("the server closed the stream without a finish_reason")
        if parser is not None:
            rest = parser.finish()
            if rest:
                text.append(rest)
                emit_text(rest)
        for call in state.calls():
            fn = call["function"]
            emit("tool_call", {"id": call["id"], "name": fn["name"], "arguments": _parsed(fn["arguments"]),
                               "message": state.message})
        if state.usage is not None:
            usage = _usage_dict(state.usage)
            if run is not None:
                run.add_usage(usage)
            emit("usage", {**usage, "message": state.message})

    # -- faults ------------------------------------------------------------------------
    def _retry_or_raise(self, error: BaseException, attempt: int, partial: str = "", *,
                        run: Run | None = None) -> int:
        """Sleep and return the next attempt number, or raise the final ``LLMError``."""
        status = getattr(error, "status_code", None)
        if isinstance(error, openai.APITimeoutError):
            raise LLMTimeoutError(
                f"{self.name}: no data from {self.base_url} within timeout={self._timeout} s "
                f"(model {self._model!r}); raise timeout= or check the server",
                partial_text=partial) from error
        retryable = (isinstance(error, (openai.APIConnectionError, _Incomplete))
                     or (status is not None and (status >= 500 or status == 429)))
        if not retryable or attempt >= self._max_retries:
            tries = f" after {attempt + 1} attempts" if retryable and attempt else ""
            raise LLMError(f"{self.name}: request to {self.base_url} (model {self._model!r}) "
                           f"failed{tries}: {_describe(error)}", status_code=status,
                           partial_text=partial) from error
        delay = self._retry_backoff * (2 ** attempt)
        response = getattr(error, "response", None)
        retry_after = response.headers.get("retry-after") if response is not None else None
        if retry_after:
            try:
                delay = max(delay, float(retry_after))
            except ValueError:
                pass  # an HTTP-date: keep our own backoff
        delay = min(delay, _MAX_RETRY_DELAY)
        # Said where a person and a UI look: a stall of seconds is a retry, not a hang.
        reason = ("rate limited" if status == 429 else f"server error {status}" if status
                  else "the stream was cut" if isinstance(error, _Incomplete) else "connection failed")
        message = f"{reason}, retrying in {delay:g} s"
        _log.warning("%s: %s (attempt %d of %d): %s", self.name, message, attempt + 2,
                     self._max_retries + 1, _describe(error))
        self.emit("status", message)
        # a cancel during the backoff ends the wait at once
        (run.cancelled if run is not None else _NEVER).wait(delay)
        return attempt + 1

    def _trace_text(self, output: Any) -> str:
        return reply_trace_text(output)


_NEVER = threading.Event()   # the cancel flag of work outside any run: never set
# (sid, ns) pairs where a message of a module is streaming now: a second concurrent call at
# the same place gets a distinct ns (see _streamed). Entries live only while a call streams.
_open_messages: set[tuple[str, tuple[str, ...]]] = set()
_open_lock = threading.Lock()


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _check(run: Run | None) -> None:
    if run is not None and run.cancelled.is_set():
        raise RunCancelled(f"run {run.id} of session {run.sid!r} was cancelled")


def _caused(error: LLMError, cause: BaseException) -> LLMError:
    error.__cause__ = cause
    return error


def _usage_dict(usage: Any) -> dict[str, Any]:
    return {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens}


def _parsed(arguments: str) -> Any:
    """The arguments as JSON, or the raw text when they do not parse (the model's error)."""
    try:
        return json.loads(arguments) if arguments.strip() else {}
    except ValueError:
        return arguments


class _StreamState:
    """What one streaming attempt has received so far."""

    __slots__ = ("assembler", "finish_reason", "message", "parser", "streamed", "text", "usage")

    def __init__(self, tool_call_format: Any, module: ModuleBase, message: str) -> None:
        def on_start(call_id: str, name: str, index: int) -> None:
            module.emit("tool_call_start", {"id": call_id, "name": name, "index": index, "message": message})

        def on_delta(call_id: str, piece: str) -> None:
            module.emit("tool_call_delta", {"id": call_id, "delta": piece})

        self.text: list[str] = []
        self.assembler = ToolCallAssembler(on_start, on_delta)
        self.parser = (RawToolCallParser(tool_call_format, on_start, on_delta)
                       if tool_call_format is not None else None)
        self.usage: Any = None
        self.streamed = False
        self.message = message
        self.finish_reason: str | None = None

    def calls(self) -> list[dict[str, Any]]:
        calls = self.assembler.calls() if self.assembler else []
        if self.parser is not None:
            calls += self.parser.calls
        return calls

    def result(self) -> str | dict[str, Any]:
        content = "".join(self.text)
        calls = self.calls()
        if calls:
            return {"role": "assistant", "content": content, "tool_calls": calls}
        return content


def _describe(error: BaseException) -> str:
    status = getattr(error, "status_code", None)
    body = getattr(error, "body", None)
    message = body.get("message") if isinstance(body, dict) else None
    if isinstance(error, openai.APIConnectionError) and error.__cause__ is not None:
        message = f"{error.message} ({type(error.__cause__).__name__}: {error.__cause__})"
    text = message or str(error) or type(error).__name__
    return f"HTTP {status}: {text}" if status else text

