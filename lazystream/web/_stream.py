"""Pump one session's events to one HTTP client as SSE, live, until the session ends.

The pump blocks in ``read_session(..., timeout=...)`` (woken by the store, never
spinning) and wakes at least every ``_LIVENESS_EVERY`` seconds while idle to do what a
blocked read cannot: notice that the client hung up, that the producing process died,
that the idle timeout passed, that the server is closing, or that a keepalive is due.
"""
from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..events import EVENTS_QUEUE, TERMINAL
from ..queue import backend, producer_gone, read_session
from . import _sse

__all__ = ["StreamRequest", "pump", "session_ended_before"]

_LIVENESS_EVERY = 0.5
_BATCH = 1000   # events per read, so a long session is sent in bounded pieces


@dataclass(frozen=True, slots=True)
class StreamRequest:
    """What a client asked for: a session, a cursor, an optional queue filter and idle timeout."""

    sid: str
    after: int
    queues: tuple[str, ...] | None
    timeout: float | None


class ClientGone(Exception):
    """The client closed the connection; the pump stops quietly."""


def session_ended_before(sid: str, after: int) -> bool:
    """Return True if ``sid`` has ended and has no event after ``after`` (nothing left to send)."""
    info = backend().session_info(sid)
    return info is not None and info["ended"] is not None and not read_session(sid, after, limit=1)


def pump(req: StreamRequest, write: Callable[[bytes], None], sock: socket.socket,
         keepalive: float, closing: threading.Event) -> None:
    """Write the session's events after ``req.after`` to ``write`` until the stream is over.

    Ends with ``data: [DONE]`` after the ``end`` event, with an ``event: error`` message if
    the producer died or ``req.timeout`` passed without an event, and silently when the
    server is closing (the client resumes elsewhere with ``Last-Event-ID``). Returns
    quietly if the client goes away; raises what the store raises.
    """
    wanted = None if req.queues is None else frozenset(req.queues)
    # The end event lives in lazy_events: always watch it, so a filtered stream still ends.
    watched = None if wanted is None else tuple(wanted | {EVENTS_QUEUE})
    after = req.after
    last_event = last_write = time.monotonic()
    try:
        while not closing.is_set():
            now = time.monotonic()
            wait = min(_LIVENESS_EVERY, max(0.0, keepalive - (now - last_write)))
            if req.timeout is not None:
                wait = min(wait, max(0.0, req.timeout - (now - last_event)))
            events = read_session(req.sid, after, queues=watched, timeout=wait, limit=_BATCH)
            if events:
                last_event = time.monotonic()
                out = []
                for event in events:
                    after = event.seq
                    if wanted is None or event.queue in wanted or event.kind == TERMINAL:
                        out.append(_sse.encode_event(event))
                    if event.kind == TERMINAL:
                        out.append(_sse.DONE)
                        _send(write, b"".join(out))
                        return
                if out:
                    _send(write, b"".join(out))
                    last_write = time.monotonic()
                continue
            if _client_gone(sock):
                return
            now = time.monotonic()
            if req.timeout is not None and now - last_event >= req.timeout:
                _send(write, _sse.encode_error(
                    "TimeoutError", f"no event in session {req.sid!r} for {req.timeout:g} s (timeout={req.timeout:g})"))
                return
            info = backend().session_info(req.sid)
            gone = producer_gone(req.sid)
            if info is not None and (info["ended"] is not None or gone is not None):
                # Nothing more will be written, but what was stored since our read (the end
                # event, a dead producer's last tokens) still goes out before the stream closes.
                if read_session(req.sid, after, queues=watched, limit=1):
                    continue
                if info["ended"] is not None:
                    _send(write, _sse.DONE)   # its end event was at or before the cursor
                else:
                    _send(write, _sse.encode_error("ProducerGone", gone))
                return
            if now - last_write >= keepalive:
                _send(write, _sse.KEEPALIVE)
                last_write = now
    except ClientGone:
        return


def _send(write: Callable[[bytes], None], data: bytes) -> None:
    try:
        write(data)
    except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError) as e:
        # TimeoutError: the client has not read anything for the socket timeout; drop it.
        raise ClientGone() from e


def _client_gone(sock: socket.socket) -> bool:
    """Return True if the client closed its end (an SSE client never sends after its request)."""
    # A non-blocking peek, not select(): select fails on descriptors above FD_SETSIZE.
    try:
        previous = sock.gettimeout()
        sock.settimeout(0)
        try:
            return sock.recv(1, socket.MSG_PEEK) == b""
        finally:
            sock.settimeout(previous)
    except BlockingIOError:
        return False   # nothing to read: the client is still there
    except OSError:
        return True    # reset, aborted, or already closed under us
