"""Running one model turn's tool calls: in parallel, under the caller's session, in call order.

A bad call never raises here. An unknown tool, malformed or invalid arguments, a tool that
raises and a tool that overruns its timeout each become an ``Error: ...`` text that goes
back to the model as the tool result (so it can correct itself), plus an error trace and a
``tool_result`` event with ``error`` set.
"""
from __future__ import annotations

import contextlib
import inspect
import json
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

from ..executor import work_pool
from ..module import ModuleBase
from ..queue import emit
from ..runs import RunCancelled, check_cancelled, current_run
from ..session import current_ns
from ._async import run_awaitable
from ._registry import RegisteredTool
from ._validate import ToolArgumentError, parse_arguments, validate_arguments

__all__ = ["ToolOutcome", "run_tool_calls", "tool_result_text"]


@dataclass(frozen=True)
class ToolOutcome:
    """What one tool call produced: the text the model gets back, and the error if any."""

    id: str
    name: str
    arguments: Any  # the parsed object, or the raw text when it was not valid JSON
    content: str
    error: dict[str, str] | None = None
    duration: float = 0.0

    def message(self) -> dict[str, Any]:
        """Return the OpenAI ``tool`` message for this result."""
        return {"role": "tool", "content": self.content, "tool_call_id": self.id, "name": self.name}


def tool_result_text(value: Any) -> str:
    """Return a tool's return value as the text the model reads (JSON for non-strings).

    Text that UTF-8 cannot hold (a lone surrogate, as ``os.listdir`` returns for a file
    name that is not UTF-8) is kept readable with backslash escapes, so neither the request
    to the model nor the stored ``tool_result`` fails on it.
    """
    if not isinstance(value, str):
        try:
            value = json.dumps(value, ensure_ascii=False)
        except (TypeError, ValueError):
            value = str(value)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


@dataclass
class _Prepared:
    id: str
    name: str
    arguments: Any
    tool: RegisteredTool | None = None
    kwargs: dict[str, Any] | None = None
    error: ToolOutcome | None = None
    future: Future | None = None
    started: float = 0.0


def _fail(call_id: str, name: str, arguments: Any, kind: str, message: str,
          duration: float = 0.0) -> ToolOutcome:
    return ToolOutcome(call_id, name, arguments, f"Error: {message}",
                       {"type": kind, "message": message}, duration)


def _prepare(call: dict[str, Any], tools: dict[str, RegisteredTool]) -> _Prepared:
    fn = call.get("function") or {}
    call_id = str(call.get("id") or "")
    name = fn.get("name") or ""
    raw = fn.get("arguments")
    prepared = _Prepared(call_id, name, raw)
    tool = tools.get(name)
    if tool is None:
        available = ", ".join(tools) or "none"
        prepared.error = _fail(call_id, name, raw, "UnknownTool",
                               f"there is no tool named {name!r}; available tools: {available}.")
        return prepared
    try:
        arguments = parse_arguments(raw)
    except ToolArgumentError as e:
        prepared.error = _fail(call_id, name, raw, "MalformedArguments",
                               f"{e} — call {name!r} again with a JSON object of arguments.")
        return prepared
    prepared.arguments = arguments
    try:
        prepared.kwargs = validate_arguments(tool.spec, arguments)
    except ToolArgumentError as e:
        prepared.error = _fail(call_id, name, arguments, "InvalidArguments",
                               f"invalid arguments for {name!r}: {e}. Call it again with "
                               f"corrected arguments.")
        return prepared
    prepared.tool = tool
    return prepared


class _ToolRun(ModuleBase):
    """One call of a tool as a module: its events get the tool's name in their ``ns``, and
    module callbacks (status providers) see it start and end. An ``async def`` tool is
    awaited here, within ``timeout``."""

    def __init__(self, tool: RegisteredTool, timeout: float | None) -> None:
        super().__init__(name=tool.name)
        self.tool = tool
        self.timeout = timeout

    def forward(self, **kwargs: Any) -> Any:
        result = self.tool.fn(**kwargs)
        if inspect.isawaitable(result):
            result = run_awaitable(result, self.timeout, self.tool.name)
        return result


def _invoke(tool: RegisteredTool, kwargs: dict[str, Any], timeout: float | None) -> tuple[str | None, BaseException | None]:
    # The tool's exception is returned, not raised: a raising worker would write a session
    # `error` event, and a failing tool is the model's problem to fix, not the run's.
    try:
        return tool_result_text(_ToolRun(tool, timeout)(**kwargs)), None
    except RunCancelled as e:
        return None, e
    except Exception as e:  # noqa: BLE001 - reported to the model and as an error trace
        return None, e


def _limit(p: _Prepared, timeout: float | None) -> float | None:
    assert p.tool is not None
    return p.tool.timeout if p.tool.timeout is not None else timeout


def _collect(p: _Prepared, timeout: float | None, cancelled: Future | None) -> ToolOutcome:
    if p.error is not None:
        return p.error
    assert p.future is not None and p.tool is not None
    limit = _limit(p, timeout)
    remaining = None if limit is None else max(0.0, p.started + limit - time.monotonic())
    if cancelled is not None:
        wait([p.future, cancelled], timeout=remaining, return_when=FIRST_COMPLETED)
        check_cancelled()   # the run was cancelled: stop waiting for its tools
    try:
        content, exc = p.future.result(timeout=0 if cancelled is not None else remaining)
    except FutureTimeout:
        return _fail(p.id, p.name, p.arguments, "ToolTimeout",
                     f"tool {p.name!r} did not finish within {limit:g} s.",
                     time.monotonic() - p.started)
    duration = time.monotonic() - p.started
    if isinstance(exc, RunCancelled):
        raise exc
    if exc is not None:
        return _fail(p.id, p.name, p.arguments, type(exc).__name__,
                     f"tool {p.name!r} failed: {type(exc).__name__}: {exc}", duration)
    return ToolOutcome(p.id, p.name, p.arguments, content, None, duration)


def _report(outcome: ToolOutcome, *, trace: bool, events: bool) -> None:
    ns = current_ns() + (outcome.name or "?",)
    if events or outcome.error is not None:
        # lenient: a tool's text may hold what JSON cannot (a lone surrogate from a file name)
        emit("tool_result", {"id": outcome.id, "name": outcome.name, "content": outcome.content,
                             "error": outcome.error}, ns=ns, lenient=True)
    if trace or outcome.error is not None:
        emit("trace", {"text": outcome.content, "module": outcome.name, "path": "/".join(ns),
                       "input": outcome.arguments, "output": outcome.content,
                       "duration": outcome.duration, "error": outcome.error,
                       "tool_call_id": outcome.id}, ns=ns, lenient=True)


def run_tool_calls(calls: Sequence[dict[str, Any]], tools: dict[str, RegisteredTool], *,
                   timeout: float | None = None, trace: bool = False,
                   events: bool = False) -> list[ToolOutcome]:
    """Run a turn's tool calls in parallel and return their outcomes in call order.

    ``calls`` are OpenAI ``tool_calls`` entries; ``tools`` maps names to tools. ``timeout``
    (seconds) bounds each call whose tool has no timeout of its own. With ``trace`` each
    result is written as a trace, with ``events`` as a ``tool_result`` event; failures are
    always written; with ``events`` each tool's start too (``tool_start``). Never raises for
    a bad call; raises ``RunCancelled`` when the run is cancelled (before any tool starts,
    or while waiting for them — running tools can check ``lazystream.check_cancelled()``).
    """
    check_cancelled()   # a tool boundary: a cancelled run starts no tool
    prepared = [_prepare(call, tools) for call in calls]
    runnable = [p for p in prepared if p.error is None]
    pool = work_pool(max(1, len(runnable))) if runnable else None
    run = current_run()
    cancelled: Future | None = Future() if run is not None and runnable else None

    def stop_waiting() -> None:
        if cancelled is not None and not cancelled.done():
            cancelled.set_result(None)

    watch = run.on_cancel(stop_waiting) if run is not None and cancelled is not None else contextlib.nullcontext()
    try:
        with watch:
            for p in runnable:
                if events:
                    emit("tool_start", {"id": p.id, "name": p.name, "arguments": p.arguments},
                         ns=current_ns() + (p.name,), lenient=True)
                p.started = time.monotonic()
                assert pool is not None
                p.future = pool.submit(_invoke, p.tool, p.kwargs, _limit(p, timeout))
            outcomes = []
            for p in prepared:
                outcome = _collect(p, timeout, cancelled)
                _report(outcome, trace=trace, events=events)
                outcomes.append(outcome)
            return outcomes
    finally:
        if pool is not None:
            # A timed-out tool keeps its thread (Python cannot kill one); do not wait for it.
            pool.shutdown(wait=False)
