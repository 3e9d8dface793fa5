"""``SessionServer`` and ``serve``: sessions' event streams over HTTP, on the stdlib.

Routes:

* ``GET /sessions/{sid}/events`` — the session as Server-Sent Events (see ``_sse``),
  live, from ``after=<seq>`` or the ``Last-Event-ID`` header (the larger wins), optionally
  only ``queues=a,b``, ending the stream after ``timeout=<s>`` without an event. A session
  that already ended with nothing after the cursor answers ``204 No Content``, which tells
  a browser's ``EventSource`` to stop reconnecting.
* ``GET /sessions/{sid}`` — ``{"sid", "events", "last_seq", "ended", "status"}``.

Bad parameters answer ``400`` with ``{"error", "parameter"}``; anything else ``404``.
There is no authentication: anyone who can reach the port and knows a sid can read
that session, so the default address is ``127.0.0.1``.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import selectors
import socket
import socketserver
import threading
from collections.abc import Iterator
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from ..queue import backend, read_session
from ._sse import encode_error
from ._stream import StreamRequest, pump, session_ended_before

__all__ = ["SessionServer", "serve"]

_log = logging.getLogger("lazystream.web")
_STREAM_PARAMS = ("after", "queues", "timeout")


class _BadRequest(Exception):
    """A request parameter is wrong; the message names it and the fix."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter


class SessionServer:
    """An HTTP server of sessions' event streams, bound on creation.

    ``SessionServer(host, port)`` listens at once (``port=0`` picks a free port, see
    ``url``); ``start()`` serves in a background thread, ``serve_forever()`` in the
    caller's; ``close()`` stops accepting, ends open streams (their clients can resume
    elsewhere with ``Last-Event-ID``) and frees the port. Usable as a context manager.
    ``keepalive`` is the seconds of silence after which an idle stream gets a comment line.

    Raises ``ValueError`` for a bad ``keepalive`` and ``OSError`` naming the address when
    it cannot listen.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, keepalive: float = 15.0) -> None:
        if isinstance(keepalive, bool) or not isinstance(keepalive, (int, float)) or not keepalive > 0 \
                or math.isinf(keepalive):
            raise ValueError(f"SessionServer: keepalive must be a number of seconds > 0, got {keepalive!r}; "
                             "e.g. 15")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"SessionServer: port must be an int in 0..65535 (0: a free port), got {port!r}")
        self.keepalive = float(keepalive)
        self._closing = threading.Event()
        self._streams = 0
        self._streams_changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self._serving = False
        try:
            self._httpd = _HTTPServer((host, port), self)
        except OSError as e:
            raise OSError(e.errno, f"SessionServer: cannot listen on {host}:{port} ({e.strerror or e}); "
                                   "choose another port, or 0 for a free one") from e
        self._httpd.timeout = 0
        self._wake_r, self._wake_w = socket.socketpair()
        bound_host, bound_port = self._httpd.server_address[:2]
        self.host, self.port = host, bound_port
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        self.url = f"http://{shown}:{bound_port}"

    def __repr__(self) -> str:
        return f"SessionServer({self.url!r})"

    # --- running ----------------------------------------------------------------------
    def start(self) -> str:
        """Serve in a daemon thread; return the base URL. Raises ``RuntimeError`` if already serving."""
        self._begin()
        self._thread = threading.Thread(target=self._accept_loop, name=f"lazystream-web {self.url}", daemon=True)
        self._thread.start()
        return self.url

    def serve_forever(self) -> None:
        """Serve in the calling thread until ``close()`` (from another thread) or KeyboardInterrupt."""
        self._begin()
        try:
            self._accept_loop()
        finally:
            self.close()

    def _begin(self) -> None:
        if self._serving or self._closing.is_set():
            raise RuntimeError(f"{self!r} is already serving or closed; create a new SessionServer")
        self._serving = True

    def _accept_loop(self) -> None:
        # Our own loop instead of socketserver's serve_forever: that one polls for shutdown
        # every poll_interval; this one sleeps until a client connects or close() wakes it.
        with selectors.DefaultSelector() as selector:
            selector.register(self._httpd.socket, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while not self._closing.is_set():
                for key, _ in selector.select():
                    if key.fileobj is self._httpd.socket and not self._closing.is_set():
                        self._httpd.handle_request()   # accepts without blocking (timeout 0)

    def close(self, timeout: float = 5.0) -> None:
        """Stop serving, end open streams (waiting up to ``timeout`` s for them) and free the port."""
        if self._closing.is_set():
            return
        self._closing.set()
        self._wake_w.send(b"x")
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        self.wait_idle(timeout)
        self._httpd.server_close()
        self._wake_r.close()
        self._wake_w.close()

    def __enter__(self) -> SessionServer:
        if not self._serving:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- open streams -----------------------------------------------------------------
    @property
    def active_streams(self) -> int:
        """How many event streams are being served right now."""
        return self._streams

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no stream is being served; return False if ``timeout`` s passed first."""
        with self._streams_changed:
            return self._streams_changed.wait_for(lambda: self._streams == 0, timeout)

    @contextlib.contextmanager
    def _stream_slot(self) -> Iterator[None]:
        with self._streams_changed:
            self._streams += 1
        try:
            yield
        finally:
            with self._streams_changed:
                self._streams -= 1
                self._streams_changed.notify_all()


@contextlib.contextmanager
def serve(host: str = "127.0.0.1", port: int = 0, *, keepalive: float = 15.0) -> Iterator[str]:
    """Serve sessions' event streams in a background thread for the block; yield the base URL.

    ``port=0`` picks a free port. Raises like ``SessionServer``.
    """
    with SessionServer(host, port, keepalive=keepalive) as server:
        yield server.url


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True       # a stream blocked on an open session never holds up exit
    request_queue_size = 128    # many clients connect at once (the default backlog is 5)

    def __init__(self, address: tuple[str, int], app: SessionServer) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.app = app
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, which can stall on DNS; we never use it.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]

    def handle_error(self, request: Any, client_address: Any) -> None:
        _log.exception("lazystream.web: request from %s failed", client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.1"
    server_version = "lazystream-web"
    # Socket timeout: a client that sends no request, or reads nothing, for this long is dropped.
    timeout = 60

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        _log.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        self.close_connection = True
        url = urlsplit(self.path)
        parts = url.path.split("/")
        try:
            if len(parts) == 4 and parts[:2] == ["", "sessions"] and parts[3] == "events":
                self._events(_sid(parts[2]), url.query)
            elif len(parts) == 3 and parts[:2] == ["", "sessions"]:
                self._summary(_sid(parts[2]), url.query)
            else:
                self._json(HTTPStatus.NOT_FOUND, {
                    "error": f"no route for {url.path!r}; use GET /sessions/{{sid}}/events or GET /sessions/{{sid}}"})
        except _BadRequest as e:
            self._json(HTTPStatus.BAD_REQUEST, {"error": str(e), "parameter": e.parameter})
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            return   # the client left before the answer was written

    def _summary(self, sid: str, query: str) -> None:
        _params(query, ())
        info = backend().session_info(sid)
        events = read_session(sid)
        if info is None and not events:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no session {sid!r} in this store (it never wrote an "
                                                       "event, or it ended and was pruned)", "sid": sid})
            return
        ended = info is not None and info["ended"] is not None
        self._json(HTTPStatus.OK, {"sid": sid, "events": len(events),
                                   "last_seq": events[-1].seq if events else 0, "ended": ended,
                                   "status": info["status"] if ended else "running"})

    def _events(self, sid: str, query: str) -> None:
        req = _stream_request(sid, _params(query, _STREAM_PARAMS), self.headers.get("Last-Event-ID"))
        app = self.server.app
        with app._stream_slot():
            if session_ended_before(req.sid, req.after):
                self.send_response(HTTPStatus.NO_CONTENT)
                self.send_header("Content-Length", "0")
                self.send_header("Connection", "close")
                self.end_headers()
                return
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("X-Accel-Buffering", "no")   # nginx: do not buffer the stream
            self.send_header("Connection", "close")
            self.end_headers()
            try:
                pump(req, self.wfile.write, self.connection, app.keepalive, app._closing)
            except Exception as e:
                # The 200 is already sent: the failure becomes the stream's closing error message.
                _log.exception("lazystream.web: streaming session %r failed", sid)
                with contextlib.suppress(OSError):
                    self.wfile.write(encode_error(type(e).__name__, str(e)))

    def _json(self, status: HTTPStatus, body: dict[str, Any]) -> None:
        payload = json.dumps(body, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload)


def _sid(segment: str) -> str:
    sid = unquote(segment)
    if not sid:
        raise _BadRequest("sid", "the session id in the path is empty; use /sessions/<sid>/events "
                                 "with the sid URL-encoded")
    return sid


def _params(query: str, known: tuple[str, ...]) -> dict[str, str]:
    try:
        parsed = parse_qs(query, keep_blank_values=True, strict_parsing=False)
    except ValueError as e:
        raise _BadRequest("query", f"cannot parse the query string {query!r}: {e}") from e
    out = {}
    for name, values in parsed.items():
        if name not in known:
            hint = f"known parameters: {', '.join(known)}" if known else "this route takes no parameters"
            raise _BadRequest(name, f"unknown parameter {name!r}; {hint}")
        if len(values) > 1:
            raise _BadRequest(name, f"parameter {name!r} given {len(values)} times; give it once")
        out[name] = values[0]
    return out


def _stream_request(sid: str, params: dict[str, str], last_event_id: str | None) -> StreamRequest:
    after = _cursor("after", params.get("after", "0"), "after=<seq>")
    if last_event_id is not None and last_event_id.strip():
        after = max(after, _cursor("Last-Event-ID", last_event_id.strip(), "the header Last-Event-ID: <seq>"))
    queues = None
    if "queues" in params:
        queues = tuple(q.strip() for q in params["queues"].split(","))
        if not all(queues):
            raise _BadRequest("queues", f"queues={params['queues']!r} has an empty name; use a comma-separated "
                                        "list of queue names, e.g. queues=lazy_stream,lazy_trace")
    timeout = None
    if "timeout" in params:
        raw = params["timeout"]
        try:
            timeout = float(raw)
        except ValueError:
            timeout = -1.0
        if not (0 <= timeout < math.inf):
            raise _BadRequest("timeout", f"timeout={raw!r} is not a number of seconds >= 0; e.g. timeout=30, "
                                         "or leave it out to wait for ever")
    return StreamRequest(sid, after, queues, timeout)


def _cursor(name: str, raw: str, usage: str) -> int:
    if raw.isdigit() and raw.isascii():
        return int(raw)
    raise _BadRequest(name, f"{name}={raw!r} is not a sequence number; use {usage} with a non-negative "
                            "integer, the id of the last event you received (0: from the start)")
