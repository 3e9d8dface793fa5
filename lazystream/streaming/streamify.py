"""``streamify``: run a program and stream its fields, status messages and final output.

Each call of the streamified program:

1. resolves nothing (listeners were resolved by ``streamify``), makes fresh per-call field
   state, and submits the program to a ``lazystream.ThreadPoolExecutor`` inside a new
   session (``streamify-<uuid>``);
2. the program's LM calls write ``lm_start`` / ``text`` / ``lm_end`` events and its status
   hooks write ``status`` events into that session (see ``lazystream.programs._run``);
3. the generator follows the session with a ``LiveReader`` (a blocking, notified read
   that sees the events before they are stored) and yields ``StreamResponse``,
   ``StatusMessage`` and, last, the program's output.

Leaving the generator early (``break``, ``aclose()``, garbage collection) cancels the run:
the LM stops at its next token and closes its HTTP stream. The program's exception is
raised to the caller as it is, in both modes.
"""
from __future__ import annotations

import inspect
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any

from ._call import StreamCall
from .listener import StreamListener, resolve
from .status import StatusMessageProvider

__all__ = ["streamify"]

_WAIT = 0.5   # how long one read blocks before the reader checks that the producer lives



def streamify(program: Callable[..., Any],
              status_message_provider: StatusMessageProvider | None = None,
              stream_listeners: list[StreamListener] | None = None,
              include_final_prediction_in_output_stream: bool = True,
              is_async_program: bool = False,
              async_streaming: bool = True) -> Callable[..., Any]:
    """Return a function that calls ``program`` and returns a stream of its output.

    The stream is an async generator, or with ``async_streaming=False`` a generator. It
    yields ``StreamResponse`` chunks of the listened fields, ``StatusMessage`` items from
    ``status_message_provider`` (default: ``StatusMessageProvider()``), and the program's
    output last (with ``include_final_prediction_in_output_stream=False``, only when no
    field was streamed, e.g. on a cache hit).

    With ``is_async_program=True`` the program is run as ``await program.acall(...)`` (its
    ``aforward``); an ``async def`` function is awaited as it is.

    Raises ``TypeError`` for a program that is not callable (or, with
    ``is_async_program=True``, has no ``acall``) or a provider that is not a
    ``StatusMessageProvider``, and what ``StreamListener`` documents for bad listeners.
    """
    if not callable(program):
        raise TypeError(f"streamify: program must be callable (a Module, Predict, …), got "
                        f"{program!r}")
    run: Callable[..., Any] | None = program
    is_async = inspect.iscoroutinefunction(program)
    if is_async_program and not is_async:
        run = getattr(program, "acall", None)
        if not callable(run):
            raise TypeError(f"streamify: is_async_program=True needs a program with an async "
                            f"acall() (a dspy.Module) or an async function, got {program!r}")
        is_async = True
    provider = status_message_provider if status_message_provider is not None \
        else StatusMessageProvider()
    if not isinstance(provider, StatusMessageProvider):
        raise TypeError(f"streamify: status_message_provider must be a StatusMessageProvider "
                        f"(subclass it and override its hooks), got {provider!r}")
    if stream_listeners is not None and not isinstance(stream_listeners, (list, tuple)):
        raise TypeError(f"streamify: stream_listeners must be a list of StreamListener, got "
                        f"{stream_listeners!r}")
    targets, names = resolve(program, list(stream_listeners or ()))
    include_final = bool(include_final_prediction_in_output_stream)

    def streamer(*args: Any, **kwargs: Any) -> Any:
        call = StreamCall(run, args, kwargs, targets, dict(names), provider, include_final,
                          is_async)
        return _astream(call) if async_streaming else _stream(call)

    streamer.__name__ = f"streamified_{getattr(program, '__name__', type(program).__name__)}"
    streamer.__doc__ = f"Stream the output of {program!r} (see lazystream.streamify)."
    return streamer


def _stream(call: StreamCall) -> Generator[Any, None, None]:
    call.start()
    try:
        while not call.done:
            yield from call.pump(_WAIT)
    finally:
        call.cancel()


async def _astream(call: StreamCall) -> AsyncGenerator[Any, None]:
    call.start()
    try:
        while not call.done:
            for item in await call.apump(_WAIT):
                yield item
    finally:
        call.cancel()
