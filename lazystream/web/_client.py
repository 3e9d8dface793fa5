"""``follow_session``: read a session's events from a ``SessionServer``, resuming after drops.

Built on ``urllib.request``. When the connection drops (reset, cut mid-message, server
restarted, no byte for ``read_timeout`` s) the client reconnects with ``Last-Event-ID``
set to the last event it yielded, and skips anything at or before it: the consumer sees
each event once, in order.
"""
from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from urllib.parse import quote, urlencode

from ..events import Event
from ..queue import ProducerGone
from . import _sse

__all__ = ["follow_session"]

_BACKOFF_FIRST, _BACKOFF_MAX = 0.25, 4.0


def follow_session(base_url: str, sid: str, after: int = 0, *, queues: tuple[str, ...] | None = None,
                   timeout: float | None = None, read_timeout: float = 60.0,
                   max_retries: int = 5) -> Iterator[Event]:
    """Yield the events of session ``sid`` after ``after`` from the server at ``base_url``,
    live, through the session's ``end`` event.

    ``queues`` keeps only those queues (the ``end`` event always comes); ``timeout`` asks
    the server to stop after that many seconds without an event. ``read_timeout`` must
    exceed the server's keepalive (15 s by default).

    Raises ``ProducerGone`` if the producing process died, ``TimeoutError`` after
    ``timeout``, ``ValueError`` for a request the server rejects (4xx, with its reason),
    ``ConnectionError`` after ``max_retries`` reconnections in a row without a new event,
    and ``RuntimeError`` for any other failure the server reports.
    """
    if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
        raise ValueError(f"follow_session: base_url must be an http(s) URL such as 'http://127.0.0.1:8765', "
                         f"got {base_url!r}")
    if not isinstance(sid, str) or not sid:
        raise ValueError(f"follow_session: sid must be a non-empty string, got {sid!r}")
    if isinstance(after, bool) or not isinstance(after, int) or after < 0:
        raise ValueError(f"follow_session: after must be an int >= 0 (a seq; 0: from the start), got {after!r}")
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise ValueError(f"follow_session: max_retries must be an int >= 0, got {max_retries!r}")
    if isinstance(queues, str):
        queues = (queues,)
    params: dict[str, str] = {"after": str(after)}
    if queues is not None:
        params["queues"] = ",".join(queues)
    if timeout is not None:
        params["timeout"] = repr(float(timeout))
    url = f"{base_url.rstrip('/')}/sessions/{quote(sid, safe='')}/events?{urlencode(params)}"

    last, failures = after, 0
    while True:
        dropped: BaseException | None = None
        try:
            response = urllib.request.urlopen(urllib.request.Request(url, headers={
                "Accept": "text/event-stream", "Cache-Control": "no-cache", "Last-Event-ID": str(last)}),
                timeout=read_timeout)
        except urllib.error.HTTPError as e:
            if 400 <= e.code < 500:
                raise ValueError(f"follow_session: {url} answered {e.code}: {_reason(e)}") from None
            response, dropped = None, e
        except (OSError, http.client.HTTPException) as e:   # URLError is an OSError
            response, dropped = None, e
        if response is not None:
            with response:
                if response.status == 204:   # ended, nothing after the cursor
                    return
                messages = _sse.parse(iter(response.readline, b""))
                while True:
                    try:
                        message = next(messages, None)
                    except (OSError, http.client.HTTPException) as e:
                        dropped = e
                        break
                    if message is None:
                        break
                    if message.data == "[DONE]":
                        return
                    if message.event == "error" and message.id is None:
                        raise _server_error(message.data)
                    event = _sse.event_of(message)
                    if event.seq <= last:
                        continue
                    last, failures = event.seq, 0
                    yield event
        failures += 1
        if failures > max_retries:
            raise ConnectionError(f"follow_session: lost {url} {failures} times in a row without a new event "
                                  f"(last: {dropped!r}); last event seq {last}") from dropped
        time.sleep(min(_BACKOFF_MAX, _BACKOFF_FIRST * 2 ** (failures - 1)))


def _reason(e: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(e.read().decode("utf-8", errors="replace"))["error"])
    except (ValueError, KeyError, TypeError, OSError):
        return str(e.reason)


def _server_error(data: str) -> Exception:
    try:
        body = json.loads(data)
        type_, message = str(body["type"]), str(body["message"])
    except (ValueError, KeyError, TypeError):
        return RuntimeError(f"follow_session: the server ended the stream with an error: {data[:200]!r}")
    if type_ == "ProducerGone":
        return ProducerGone(message)
    if type_ == "TimeoutError":
        return TimeoutError(message)
    return RuntimeError(f"follow_session: the server failed: {type_}: {message}")
