"""Assemble streamed OpenAI tool-call deltas into complete calls, reporting them as they grow.

The first delta of a call carries its ``id`` and ``name`` (a name may also arrive in
pieces), later deltas carry argument fragments, which are concatenated. Calls are keyed
by ``index``; several may share one chunk. Some providers send every parallel call with
index 0: a delta whose ``id`` differs from the current call's, or that names a call whose
arguments have already started, starts a new call.

While feeding, the assembler reports to ``on_start(id, name, index)`` once per call (when
its first argument piece arrives, the next call begins, or the stream ends — by then the
name is whole) and to ``on_delta(id, piece)`` for each argument piece after that.
"""
from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

__all__ = ["ToolCallAssembler", "new_call_id"]


def new_call_id() -> str:
    """A call id for a provider that sends none."""
    return f"call_{uuid.uuid4().hex[:24]}"


def _get(obj: Any, key: str) -> Any:
    """Field of an SDK delta object or of a plain dict."""
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(key)
    return getattr(obj, key, None)


class _Call:
    __slots__ = ("args", "id", "name", "number", "started")

    def __init__(self, number: int) -> None:
        self.id: str | None = None
        self.name = ""
        self.args: list[str] = []
        self.number = number    # position in the message: the ``index`` readers see
        self.started = False


def _ignore(*_: Any) -> None:
    pass


class ToolCallAssembler:
    """Feed it each chunk's ``delta.tool_calls``; ``calls()`` returns the finished calls."""

    def __init__(self, on_start: Callable[[str, str, int], None] = _ignore,
                 on_delta: Callable[[str, str], None] = _ignore) -> None:
        self._calls: list[_Call] = []
        self._by_index: dict[Any, _Call] = {}
        self._on_start = on_start
        self._on_delta = on_delta

    def __bool__(self) -> bool:
        return bool(self._calls)

    def feed(self, deltas: Any) -> None:
        """Add one chunk's tool-call deltas (SDK objects or dicts)."""
        for delta in deltas or ():
            index = _get(delta, "index")
            call_id = _get(delta, "id")
            fn = _get(delta, "function")
            name = _get(fn, "name")
            args = _get(fn, "arguments")
            call = self._by_index.get(index) if index is not None else (
                self._calls[-1] if self._calls else None)
            if call is None or (call_id and call.id and call_id != call.id) or (
                    name and not call_id and call.name and "".join(call.args).strip()):
                if self._calls:
                    self._start(self._calls[-1])
                call = _Call(len(self._calls))
                self._calls.append(call)
                self._by_index[index] = call
            if call_id and not call.id:
                call.id = call_id
            if name and not (call_id and call_id == call.id and name == call.name):
                call.name += name
            if args:
                call.args.append(args)
                if call.started and call.id is not None:
                    self._on_delta(call.id, args)
                else:
                    self._start(call)

    def _start(self, call: _Call) -> None:
        if call.started:
            return
        call.started = True
        call_id = call.id = call.id or new_call_id()
        self._on_start(call_id, call.name, call.number)
        for piece in call.args:
            self._on_delta(call_id, piece)

    def calls(self) -> list[dict[str, Any]]:
        """The calls in OpenAI message format, in order (reports the unstarted ones)."""
        out = []
        for call in self._calls:
            self._start(call)
            out.append({"id": call.id, "type": "function",
                        "function": {"name": call.name, "arguments": "".join(call.args)}})
        return out
