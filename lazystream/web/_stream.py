"""One client's view of one session: its events after a cursor, live, until the end.

``session_stream`` is an async generator of batches (lists) of ``Event`` objects — all
that is there when the client is ready, so one write carries them — interleaved with
three markers: ``HEARTBEAT`` (nothing happened for ``keepalive`` s: write a comment so proxies
and the client know the connection lives), ``StreamError`` (the stream must stop: the
producer died, the idle timeout passed, the store failed — there is no session event to
send), and ``DONE`` (the session's ``end`` event was sent, or it had ended before the
cursor). Exactly one of ``DONE`` / ``StreamError`` comes last, unless the server closes
first, in which case the stream just stops and the client resumes with its cursor.

The wire encodings (SSE, NDJSON) and the adapters take it from here.
"""
from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass

from anyio import to_thread

from ..events import TERMINAL, Event
from ..queue import read_session
from ._hub import Hub

__all__ = ["DONE", "HEARTBEAT", "StreamError", "StreamRequest", "session_stream"]

_BATCH = 500


@dataclass(frozen=True, slots=True)
class StreamRequest:
    """What a client asked for: a session, a cursor, an optional queue filter and idle timeout."""

    sid: str
    after: int = 0
    queues: tuple[str, ...] | None = None
    timeout: float | None = None


@dataclass(frozen=True, slots=True)
class StreamError:
    """Why a stream stops without the session's end event: ``{"type", "message"}``."""

    type: str
    message: str


class _Marker:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


class _Batch(list):
    """Events ready to send, with the session's watch (to share their encoding)."""

    def __init__(self, events: list[Event], watch: object) -> None:
        super().__init__(events)
        self.watch = watch


HEARTBEAT = _Marker("HEARTBEAT")
DONE = _Marker("DONE")


async def session_stream(hub: Hub, req: StreamRequest, *, keepalive: float,
                         closing: asyncio.Event | None = None) -> AsyncGenerator[list[Event] | StreamError | _Marker, None]:
    """Yield the session's events after ``req.after``, then ``DONE`` (see the module doc)."""
    wanted = None if req.queues is None else frozenset(req.queues)
    watch = hub.subscribe(req.sid, req.after)
    after = req.after
    last_event = last_write = time.monotonic()
    try:
        while closing is None or not closing.is_set():
            events = watch.buffered_after(after)
            if events is None:   # behind the in-memory window: read the store by cursor
                events = await to_thread.run_sync(functools.partial(read_session, req.sid, after, limit=_BATCH))
            if events:
                last_event = time.monotonic()
                after = events[-1].seq
                batch = events if wanted is None else [e for e in events
                                                       if e.queue in wanted or e.kind == TERMINAL]
                ended = events[-1].kind == TERMINAL
                if batch:
                    yield _Batch(batch, watch)
                    last_write = time.monotonic()
                if ended:
                    yield DONE
                    return
                continue
            if watch.failure is not None:
                yield StreamError(type(watch.failure).__name__, str(watch.failure))
                return
            if watch.gone is not None:
                yield StreamError("ProducerGone", watch.gone)
                return
            if watch.ended:
                yield DONE     # its end event was at or before the cursor
                return
            now = time.monotonic()
            if req.timeout is not None and now - last_event >= req.timeout:
                yield StreamError("TimeoutError", f"no event in session {req.sid!r} for {req.timeout:g} s "
                                                  f"(timeout={req.timeout:g})")
                return
            if now - last_write >= keepalive:
                yield HEARTBEAT
                last_write = now
            wait = keepalive - (now - last_write)
            if req.timeout is not None:
                wait = min(wait, req.timeout - (now - last_event))
            await watch.changed(max(0.01, min(wait, 1.0)))
    finally:
        hub.unsubscribe(watch)

