"""``lazystream.stream`` / ``astream``: run any module or callable and iterate its events.

    for event in lazystream.stream(agent, "weather in Tokyo?"):
        if event.kind == "text":
            print(event.data, end="")

Each call runs the work in a fresh session (``.sid``) as that session's only run, and
yields every ``Event`` of the session in order, from ``run_start`` through ``end`` (see
docs/events.md). After the end, ``.result`` is the return value and ``.usage`` the run's
token totals; if the work failed, iterating raises its exception after the ``error``,
``run_end`` and ``end`` events were yielded. ``cancel()`` (or ``lazystream.cancel(sid)``)
stops the run — its model's HTTP stream is closed at once — and the iteration ends
normally with ``end{status: "cancelled"}`` (``.result`` then raises ``RunCancelled``);
leaving the loop early (``break``, ``close()``, ``aclose()``, garbage collection) cancels
too.

The sync and the async stream share one core (``_RunCall``); they differ only in how
they wait (the async one suspends on the hub, no thread), so both yield the same events
in the same order.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any, Self

from .events import TERMINAL, Event
from .executor import producer_pool
from .queue import aread_session, read_session
from .runs import cancel as cancel_session
from .runs import run_call
from .session import _new_sid, is_cancellation, session

__all__ = ["AsyncRunStream", "RunStream", "astream", "stream"]

_WAIT = 0.5   # how long one read blocks before the reader checks that the producer lives
_RESULT_WAIT = 60.0

def _name_of(fn: Callable[..., Any]) -> str:
    name = getattr(fn, "name", None)
    return name if isinstance(name, str) else getattr(fn, "__name__", type(fn).__name__)


class _RunCall:
    """One started run and the reader state both stream kinds share."""

    def __init__(self, fn: Callable[..., Any], args: tuple, kwargs: dict) -> None:
        if not callable(fn):
            raise TypeError(f"lazystream.stream: the first argument must be a module or a callable, "
                            f"got {type(fn).__name__} {fn!r}")
        self.sid = _new_sid()
        self.after = 0
        self.done = False
        self.usage: dict[str, int] | None = None
        self._ended = False
        self._future = producer_pool().submit(self._produce, fn, args, kwargs)

    def _produce(self, fn: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
        with session(self.sid):
            return run_call(_name_of(fn), fn, args, kwargs)

    def pump(self, timeout: float) -> list[Event]:
        """Wait up to ``timeout`` s; return the new events (maybe none). After the ``end``
        event sets ``done``; raises the work's exception once everything was returned."""
        if self._ended:
            self._wait_result()
            return self._finish()
        return self._took(read_session(self.sid, self.after, timeout=timeout))

    async def apump(self, timeout: float) -> list[Event]:
        """``pump`` for coroutines: suspends on the hub, never blocks the event loop."""
        if self._ended:
            await asyncio.wait([asyncio.wrap_future(self._future)], timeout=_RESULT_WAIT)
            self._wait_result()
            return self._finish()
        return self._took(await aread_session(self.sid, self.after, timeout=timeout))

    def _finish(self) -> list[Event]:
        self.done = True
        error = self._future.exception()
        if error is not None and not is_cancellation(error):
            raise error   # the work's exception, unwrapped; a cancelled run just ends
        return []

    def _took(self, events: list[Event]) -> list[Event]:
        if not events and self._future.done():
            events = read_session(self.sid, self.after)
            if not events:   # the producer failed before its session began
                self.done = True
                self._future.result()
                raise RuntimeError(f"lazystream.stream: session {self.sid} ended without its end event")
        for i, event in enumerate(events):
            self.after = event.seq
            if event.kind == "run_end" and isinstance(event.data, dict):
                self.usage = event.data.get("usage")
            if event.kind == TERMINAL:
                self._ended = True
                return events[:i + 1]
        return events

    def _wait_result(self) -> None:
        if not concurrent.futures.wait([self._future], timeout=_RESULT_WAIT).done:
            raise RuntimeError(f"lazystream.stream: session {self.sid} ended but its work did not "
                               f"return within {_RESULT_WAIT} s")

    @property
    def result(self) -> Any:
        if not self._future.done():
            raise RuntimeError(f"lazystream.stream: the run of session {self.sid} has not ended; "
                               "iterate the stream to its end (or cancel it) first")
        return self._future.result()

    def cancel(self) -> None:
        if not self._future.done():
            cancel_session(self.sid)


class _Base:
    """What both stream kinds offer besides iteration."""

    _call: _RunCall

    @property
    def sid(self) -> str:
        """The session the run writes to (give it to ``tail``, the web layer, a browser)."""
        return self._call.sid

    @property
    def result(self) -> Any:
        """The work's return value; raises its exception, or ``RuntimeError`` before the end."""
        return self._call.result

    @property
    def usage(self) -> dict[str, int] | None:
        """The run's token totals (from ``run_end``), or ``None`` (no usage, or not ended)."""
        return self._call.usage

    def cancel(self) -> None:
        """Stop the run; the stream then ends with ``run_end``/``end`` ``cancelled``."""
        self._call.cancel()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} sid={self.sid!r}>"


class RunStream(_Base):
    """A sync iterator of one run's events; see ``lazystream.stream``."""

    def __init__(self, call: _RunCall) -> None:
        self._call = call
        self._gen = self._events()

    def _events(self) -> Generator[Event, None, None]:
        call = self._call
        try:
            while not call.done:
                yield from call.pump(_WAIT)
        finally:
            call.cancel()   # left early: stop the run (a no-op once it ended)

    def __iter__(self) -> RunStream:
        return self

    def __next__(self) -> Event:
        return next(self._gen)

    def close(self) -> None:
        """Stop reading; cancels the run if it has not ended."""
        self._gen.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncRunStream(_Base):
    """An async iterator of one run's events; see ``lazystream.astream``."""

    def __init__(self, call: _RunCall) -> None:
        self._call = call
        self._gen = self._events()

    async def _events(self) -> AsyncGenerator[Event, None]:
        call = self._call
        try:
            while not call.done:
                for event in await call.apump(_WAIT):
                    yield event
        finally:
            call.cancel()

    def __aiter__(self) -> AsyncRunStream:
        return self

    async def __anext__(self) -> Event:
        return await self._gen.__anext__()

    async def aclose(self) -> None:
        """Stop reading; cancels the run if it has not ended."""
        await self._gen.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def stream(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> RunStream:
    """Start ``fn(*args, **kwargs)`` as a run in a fresh session; return its event stream.

    Raises ``TypeError`` if ``fn`` is not callable.
    """
    return RunStream(_RunCall(fn, args, kwargs))


def astream(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> AsyncRunStream:
    """The async form of ``stream``: ``async for event in lazystream.astream(agent, q)``."""
    return AsyncRunStream(_RunCall(fn, args, kwargs))
