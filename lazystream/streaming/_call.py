"""One streamify call: the producer that runs the program, and the reader that turns the
session's events into ``StreamResponse`` / ``StatusMessage`` / the final output.

The sync generator drives ``StreamCall.pump`` and the async one ``apump``; they differ
only in how they wait (the async one suspends on the hub), so both yield the same items
in the same order.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import uuid
from typing import Any

from ..events import TERMINAL, Event
from ..executor import producer_pool
from ..module import callbacks
from ..programs import Prediction
from ..programs._run import StreamRun, current_run, token_run
from ..programs.adapters import Adapter
from ..programs.adapters.base import FieldScanner
from ..programs.settings import settings
from ..queue import LiveReader, emit
from ..runs import cancel as cancel_runs
from ..runs import run_call
from ..session import session
from .listener import Target
from .messages import StatusMessage, StreamResponse
from .status import StatusMessageProvider, _StatusCallback, _StatusHooks

__all__ = ["StreamCall"]

_RESULT_WAIT = 60.0   # the producer returns right after writing `end`; this is a safety net



def _program_name(program: Any) -> str:
    name = getattr(program, "name", None)
    return name if isinstance(name, str) else type(program).__name__


class _Field:
    """The state of one listened field in one LM call."""

    __slots__ = ("scanner", "target")

    def __init__(self, target: Target, scanner: FieldScanner) -> None:
        self.target = target
        self.scanner = scanner


class StreamCall:
    """Runs ``program(*args, **kwargs)`` in a fresh session and reads its events back.

    The program runs in a copy of the context the streamified program was *called* in
    (settings overrides, callbacks), even if the stream is first read elsewhere. An async
    program (``is_async``: ``program`` returns a coroutine) runs in an event loop of its own
    in the producer thread.
    """

    def __init__(self, program: Any, args: tuple, kwargs: dict, targets: list[Target],
                 names: dict[int, str], provider: StatusMessageProvider,
                 include_final: bool, is_async: bool = False) -> None:
        self.program, self.args, self.kwargs = program, args, kwargs
        self.is_async = is_async
        self.targets = targets
        self.provider = provider
        self.include_final = include_final
        self.context = contextvars.copy_context()
        self.sid = f"streamify-{uuid.uuid4().hex}"
        self.run = StreamRun(names, {t.key for t in targets})
        self.done = False
        self._future: concurrent.futures.Future | None = None
        self._reader = LiveReader(self.sid)   # sees this process's rows before they are stored
        self._calls: dict[str, list[_Field]] = {}
        self._used: set[int] = set()          # targets without allow_reuse already streamed
        self._streamed = False
        self._ended = False                   # the session's end event was read

    # ---- producer ----------------------------------------------------------------------
    def start(self) -> None:
        """Submit the program to the producer pool (once)."""
        if self._future is None:
            self._future = self.context.run(producer_pool().submit, self._produce)

    def _produce(self) -> Any:
        current_run.set(self.run)   # this worker's context is a copy: nothing leaks out
        token_run.set(None)
        hooks = _StatusHooks(self.provider, self.sid)
        # As in DSPy, the status hooks are also in settings.callbacks, so code that carries
        # them into a plain thread (dspy.context(callbacks=...)) reports status there too.
        with session(self.sid), callbacks(hooks), \
                settings.context(callbacks=[*settings.callbacks, _StatusCallback(hooks)]):
            result = run_call(_program_name(self.program), self._call_program, (), {})
        return result

    def _call_program(self) -> Any:
        if self.is_async:
            result = asyncio.run(self.program(*self.args, **self.kwargs))
        else:
            result = self.program(*self.args, **self.kwargs)
        if isinstance(result, Prediction):
            emit("prediction", result.toDict(), lenient=True)
        return result

    def cancel(self) -> None:
        """Tell the producer to stop at its next token (the reader went away); its model's
        HTTP stream is closed at once."""
        if not self.done:
            self.run.cancelled.set()
            cancel_runs(self.sid)
            self.done = True

    # ---- reader ------------------------------------------------------------------------
    def pump(self, timeout: float) -> list[Any]:
        """Wait up to ``timeout`` s for events; return the items they make (maybe none).

        Sets ``done`` after the last item. Raises the program's exception, unwrapped.
        """
        assert self._future is not None, "start() first"
        if self._ended:
            # The items before the end event went out first; now the result (or its error).
            return self._final()
        return self._took(self._reader.read(timeout))

    async def apump(self, timeout: float) -> list[Any]:
        """``pump`` for coroutines: suspends on the hub, never blocks the event loop."""
        assert self._future is not None, "start() first"
        if self._ended:
            await asyncio.wait([asyncio.wrap_future(self._future)], timeout=_RESULT_WAIT)
            return self._final()
        return self._took(await self._reader.aread(timeout))

    def _took(self, events: list[Event]) -> list[Any]:
        assert self._future is not None
        if not events and self._future.done():
            events = self._reader.read(0)
            if not events:  # the producer failed before its session began
                self.done = True
                self._future.result()
                raise RuntimeError(f"streamify: the program of session {self.sid} ended "
                                   "without writing its end event")
        out: list[Any] = []
        for event in events:
            if event.kind == TERMINAL:
                self._ended = True   # the next pump returns the result
                return out
            self._handle(event, out)
        return out

    def _handle(self, event: Event, out: list[Any]) -> None:
        kind = event.kind
        if kind == "text":
            if self._calls:
                for element in reversed(event.ns):
                    fields = self._calls.get(element)
                    if fields is not None:
                        self._feed(fields, event.data, out)
                        break
        elif kind == "status":
            out.append(StatusMessage(event.data))
        elif kind == "lm_start":
            self._open(event.data)
        elif kind == "lm_end":
            fields = self._calls.pop(event.data["call"], None)
            if fields and event.data.get("ok"):
                self._release([(pos, f, chunk, last) for f in fields
                               for pos, chunk, last in f.scanner.finish()], out)

    def _open(self, data: dict[str, Any]) -> None:
        fields = []
        for i, target in enumerate(self.targets):
            if target.key != data["predictor"] or target.field not in data["fields"]:
                continue
            if not target.allow_reuse:
                # A JSON fallback retries the same predictor call: its field streams again.
                if i in self._used and not data.get("fallback"):
                    continue
                self._used.add(i)
            fields.append(_Field(target, Adapter.by_name(data["adapter"]).scanner(target.field)))
        if fields:
            self._calls[data["call"]] = fields

    def _feed(self, fields: list[_Field], text: str, out: list[Any]) -> None:
        self._release([(pos, f, chunk, last) for f in fields
                       for pos, chunk, last in f.scanner.feed(text)], out)

    def _release(self, released: list[tuple[int, _Field, str, bool]], out: list[Any]) -> None:
        if len(released) > 1:
            released.sort(key=lambda r: r[0])   # one token may end a field and begin the next
        for _, f, chunk, last in released:
            self._streamed = True
            out.append(StreamResponse(f.target.label, f.target.field, chunk, last))

    def _final(self) -> list[Any]:
        self.done = True
        assert self._future is not None
        if not concurrent.futures.wait([self._future], timeout=_RESULT_WAIT).done:
            raise RuntimeError(f"streamify: session {self.sid} ended but its program did not "
                               f"return within {_RESULT_WAIT} s")
        result = self._future.result()
        if result is None or not (self.include_final or not self._streamed):
            return []
        return [result]
