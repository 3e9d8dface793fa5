"""Ending a model's HTTP stream now, from any thread (how cancellation reaches the model)."""
from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

__all__ = ["stream_closer"]


def stream_closer(stream: Any) -> Callable[[], None]:
    """Return a function that ends ``stream`` (an ``openai`` SDK ``Stream``) at once.

    Shutting the socket down wakes the worker blocked reading it — closing it would not —
    and tells the model server at once that the client left, even while the model stalls.
    """
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
