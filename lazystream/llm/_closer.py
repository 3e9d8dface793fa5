"""Ending a model's HTTP exchange now, from any thread (how cancellation reaches the model).

``stream_closer(stream)`` ends a streamed reply that has begun. ``stoppable(run)`` covers
the whole exchange of the calling thread, also before the response headers arrive: the
module's HTTP client (``http_client()``) reads through sockets that note which thread is
reading, so the run's cancel can shut the socket that thread is blocked on — or make its
next read fail at once. Shutting a socket down wakes a blocked reader (closing it would
not) and tells the model server at once that the client left, even while the model stalls.
"""
from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["http_client", "stoppable", "stream_closer"]

_lock = threading.Lock()
_reading: dict[int, socket.socket] = {}   # thread id -> the socket it is reading now
_stopped: set[int] = set()                # threads whose exchange was cancelled


def stream_closer(stream: Any) -> Callable[[], None]:
    """Return a function that ends ``stream`` (an ``openai`` SDK ``Stream``) at once."""
    def close() -> None:
        response = getattr(stream, "response", None)
        network = response.extensions.get("network_stream") if response is not None else None
        sock = network.get_extra_info("socket") if network is not None else None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
                return
            except OSError:
                pass   # already closed
        if response is not None:
            response.close()
    return close


def _stop_thread(tid: int) -> Callable[[], None]:
    def stop() -> None:
        with _lock:
            _stopped.add(tid)
            sock = _reading.get(tid)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
    return stop


@contextlib.contextmanager
def stoppable(run: Any) -> Iterator[None]:
    """While the block runs, the cancel of ``run`` (a ``lazystream.runs.Run`` or None) ends
    this thread's HTTP reads through ``http_client()`` at once."""
    if run is None:
        yield
        return
    tid = threading.get_ident()
    try:
        with run.on_cancel(_stop_thread(tid)):
            yield
    finally:
        with _lock:
            _stopped.discard(tid)


def http_client(**options: Any) -> Any:
    """An ``httpx`` client as the ``openai`` SDK makes it, whose reads ``stoppable`` can end.

    Falls back to the SDK's plain client if the HTTP library's layout is not the expected
    one (then only ``stream_closer`` ends a call, once its reply has begun).
    """
    import httpcore2  # the openai SDK's HTTP stack
    import openai

    class ExchangeCancelled(openai.OpenAIError):
        """The run was cancelled: an ``OpenAIError``, so the SDK does not retry."""

    class _Stream(httpcore2.NetworkStream):
        def __init__(self, inner: Any) -> None:
            self._inner = inner

        def _check(self, tid: int) -> None:
            if tid in _stopped:
                self._inner.close()   # this connection is done for: do not leave it to the GC
                raise ExchangeCancelled("the run was cancelled; the HTTP exchange was ended")

        def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
            tid = threading.get_ident()
            with _lock:
                self._check(tid)
                _reading[tid] = self._inner.get_extra_info("socket")
            try:
                data = self._inner.read(max_bytes, timeout)
            except Exception:
                self._check(tid)   # the cancel shut the socket under this read: say so, no retry
                raise
            finally:
                with _lock:
                    _reading.pop(tid, None)
            self._check(tid)
            return data

        def write(self, buffer: bytes, timeout: float | None = None) -> None:
            self._check(threading.get_ident())
            self._inner.write(buffer, timeout)

        def close(self) -> None:
            self._inner.close()

        def start_tls(self, *args: Any, **kwargs: Any) -> Any:
            return _Stream(self._inner.start_tls(*args, **kwargs))

        def get_extra_info(self, info: str) -> Any:
            return self._inner.get_extra_info(info)

    class _Backend(httpcore2.SyncBackend):
        def connect_tcp(self, *args: Any, **kwargs: Any) -> Any:
            return _Stream(super().connect_tcp(*args, **kwargs))

        def connect_unix_socket(self, *args: Any, **kwargs: Any) -> Any:
            return _Stream(super().connect_unix_socket(*args, **kwargs))

    class _Client(openai.DefaultHttpxClient):
        def __del__(self) -> None:
            # as the SDK's own client: a dropped module closes its kept-alive connections
            if not self.is_closed:
                with contextlib.suppress(Exception):
                    self.close()

    client = _Client(**options)
    pool = getattr(getattr(client, "_transport", None), "_pool", None)
    if pool is not None and hasattr(pool, "_network_backend"):
        pool._network_backend = _Backend()
    return client
