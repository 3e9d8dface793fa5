"""``SessionServer`` and ``serve``: the web edge (``create_app``) on uvicorn, in a thread.

The socket is bound on creation (``port=0`` picks a free one; ``url`` names it), so the
URL is known before serving starts. Connection limits that the app cannot see are set
on uvicorn: at most ``max_connections`` connections (more get 503), a connection that has
not sent its request headers within ``header_timeout`` s is closed (slowloris), an idle
keep-alive connection is closed after ``keepalive_timeout`` s.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
import threading
from collections.abc import Iterator
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from ._app import create_app

__all__ = ["SessionServer", "serve"]

_log = logging.getLogger("lazystream.web")


class _Protocol(H11Protocol):
    """uvicorn's h11 protocol plus a deadline for the request headers of a new connection."""

    header_timeout = 10.0

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_deadline = self.loop.call_later(self.header_timeout, self._headers_overdue)

    def _headers_overdue(self) -> None:
        if self.cycle is None and not self.transport.is_closing():
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._header_deadline.cancel()
        super().connection_lost(exc)


class SessionServer:
    """The web edge served by uvicorn in a background thread, bound on creation.

    ``SessionServer(host, port, modules=…, **options)``: ``options`` go to ``create_app``
    (``token``, ``cors_origins``, ``keepalive``, limits…). ``SessionServer(app=your_app)``
    serves your own ASGI app (with ``create_app(...)`` mounted in it) the same way. ``start()`` serves in a daemon
    thread and returns the URL; ``serve_forever()`` serves in the caller's thread;
    ``close()`` ends open streams (clients resume with ``Last-Event-ID``) and frees the
    port. Usable as a context manager.

    Raises ``ValueError`` for a bad option and ``OSError`` naming the address when it
    cannot listen.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, modules: Any = None, app: Any = None,
                 max_connections: int = 1024, header_timeout: float = 10.0, keepalive_timeout: float = 5.0,
                 **options: Any) -> None:
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"SessionServer: port must be an int in 0..65535 (0: a free port), got {port!r}")
        if isinstance(max_connections, bool) or not isinstance(max_connections, int) or max_connections < 1:
            raise ValueError(f"SessionServer: max_connections must be an int >= 1, got {max_connections!r}")
        for name, value in (("header_timeout", header_timeout), ("keepalive_timeout", keepalive_timeout)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
                raise ValueError(f"SessionServer: {name} must be a number of seconds > 0, got {value!r}")
        if "keepalive" in options:
            keepalive = options["keepalive"]
            if isinstance(keepalive, bool) or not isinstance(keepalive, (int, float)) or not keepalive > 0 \
                    or math.isinf(keepalive):
                raise ValueError(f"SessionServer: keepalive must be a number of seconds > 0, got {keepalive!r}; "
                                 "e.g. 15")
        if app is not None and (modules is not None or options):
            raise ValueError("SessionServer: give either app= (an ASGI app of yours, e.g. with create_app(...) "
                             "mounted) or modules=/create_app options, not both")
        self.app = app if app is not None else create_app(modules, **options)
        self._edge = self.app.state.edge if app is None else _find_edge(app)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._sock.bind((host, port))
            self._sock.listen(1024)
        except OSError as e:
            self._sock.close()
            raise OSError(e.errno, f"SessionServer: cannot listen on {host}:{port} ({e.strerror or e}); "
                                   "choose another port, or 0 for a free one") from e
        self._sock.setblocking(False)
        self.host, self.port = host, self._sock.getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{self.port}"
        protocol = type("_BoundProtocol", (_Protocol,), {"header_timeout": float(header_timeout)})
        config = uvicorn.Config(self.app, http=protocol, lifespan="off", log_level="warning",
                                limit_concurrency=max_connections, timeout_keep_alive=math.ceil(keepalive_timeout),
                                timeout_graceful_shutdown=2, ws="none")
        self._server = uvicorn.Server(config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._closed = False

    def __repr__(self) -> str:
        return f"SessionServer({self.url!r})"

    # --- running ----------------------------------------------------------------------
    def start(self) -> str:
        """Serve in a daemon thread; return the base URL once it accepts connections."""
        if self._thread is not None or self._closed:
            raise RuntimeError(f"{self!r} is already serving or closed; create a new SessionServer")
        self._thread = threading.Thread(target=self._serve, name=f"lazystream-web {self.url}", daemon=True)
        self._thread.start()
        self._started.wait()
        return self.url

    def serve_forever(self) -> None:
        """Serve in the calling thread until ``close()`` (from another thread) or KeyboardInterrupt."""
        if self._thread is not None or self._closed:
            raise RuntimeError(f"{self!r} is already serving or closed; create a new SessionServer")
        self._thread = threading.current_thread()
        try:
            self._serve()
        finally:
            self.close()

    def _serve(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._started.set()
            await self._server.serve(sockets=[self._sock])
        try:
            asyncio.run(main())
        finally:
            self._started.set()

    def close(self, timeout: float = 5.0) -> None:
        """Stop serving, end open streams and free the port."""
        if self._closed:
            return
        self._closed = True
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._end_streams)
        self._server.should_exit = True
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        if self._edge is not None:
            self._edge.hub.close()
        self._sock.close()

    def _end_streams(self) -> None:
        if self._edge is None:
            return
        self._edge.closing.set()
        for stop in list(self._edge._closing_sets):
            stop.set()

    def __enter__(self) -> SessionServer:  # noqa: PYI034 - a final class in practice
        if self._thread is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- open streams -----------------------------------------------------------------
    @property
    def active_streams(self) -> int:
        """How many event streams are being served right now."""
        return 0 if self._edge is None else self._edge.streams

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no stream is being served; return False if ``timeout`` s passed first."""
        if self._edge is None:
            return True
        with self._edge.streams_changed:
            return self._edge.streams_changed.wait_for(lambda: self._edge.streams == 0, timeout)


def _find_edge(app: Any) -> Any:
    """The web edge mounted somewhere in ``app`` (Starlette or FastAPI routes), or None."""
    state = getattr(app, "state", None)
    if state is not None and hasattr(state, "edge"):
        return state.edge
    for route in getattr(app, "routes", ()):
        inner = getattr(route, "app", None)
        if inner is not None and inner is not app:
            edge = _find_edge(inner)
            if edge is not None:
                return edge
    return None


@contextlib.contextmanager
def serve(host: str = "127.0.0.1", port: int = 0, **options: Any) -> Iterator[str]:
    """Serve the web edge in a background thread for the block; yield the base URL.

    ``port=0`` picks a free port; ``options`` as for ``SessionServer``.
    """
    with SessionServer(host, port, **options) as server:
        yield server.url
