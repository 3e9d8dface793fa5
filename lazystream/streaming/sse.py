"""``streaming_response``: a streamified program's output as Server-Sent Events lines.

Each item becomes one ``data:`` line of compact JSON (no spaces, UTF-8 as is), as DSPy's:

* a ``Prediction`` → ``data: {"prediction":{"answer":"…"}}`` (exactly DSPy's payload);
* a string that already is an SSE line (``"data: …"``) → passed through unchanged (DSPy);

and, where DSPy's helper fails, items lazystream streams too:

* ``{"type":"chunk","predict_name":…,"signature_field_name":…,"chunk":…,"is_last_chunk":…}``
* ``{"type":"status","message":…}``
* any other output ``{"type":"output","output":…}``
* on failure, ``event: error`` with ``{"type":"error","error":{"type":…,"message":…}}``;

and the stream always ends with ``data: [DONE]``.
"""
from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterable, Iterable
from typing import Any

from ..programs import Prediction
from .messages import StatusMessage, StreamResponse

__all__ = ["streaming_response"]


def _plain(value: Any) -> Any:
    """JSON for values json cannot write: a pydantic model as its fields, else its repr."""
    dump = getattr(value, "model_dump", None)
    return dump(mode="json") if callable(dump) else repr(value)


def _line(payload: dict[str, Any], event: str | None = None) -> str:
    head = f"event: {event}\n" if event else ""
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), default=_plain)
    return f"{head}data: {text}\n\n"


def _encode(item: Any) -> str:
    if isinstance(item, StreamResponse):
        return _line({"type": "chunk", "predict_name": item.predict_name,
                      "signature_field_name": item.signature_field_name,
                      "chunk": item.chunk, "is_last_chunk": item.is_last_chunk})
    if isinstance(item, StatusMessage):
        return _line({"type": "status", "message": item.message})
    if isinstance(item, Prediction):
        return _line({"prediction": dict(item.items())})   # dspy_* fields stay out, as in DSPy
    if isinstance(item, str) and item.startswith("data:"):
        return item
    return _line({"type": "output", "output": item})


async def streaming_response(stream: AsyncIterable[Any] | Iterable[Any]) -> AsyncGenerator[str, None]:
    """Yield SSE lines for each item of ``stream`` (async or sync), then ``data: [DONE]``.

    A sync stream is read in a worker thread, so the event loop never blocks on it. A
    failure of the stream becomes an ``error`` event (the HTTP response has already begun,
    so it cannot become a status code); ``[DONE]`` still ends the stream.
    """
    try:
        if hasattr(stream, "__aiter__"):
            async for item in stream:  # type: ignore[union-attr]
                yield _encode(item)
        else:
            loop = asyncio.get_running_loop()
            items = iter(stream)  # type: ignore[arg-type]
            done = object()
            while (item := await loop.run_in_executor(None, next, items, done)) is not done:
                yield _encode(item)
    except Exception as e:  # noqa: BLE001 - reported to the client as an SSE error event
        yield _line({"type": "error", "error": {"type": type(e).__name__, "message": str(e)}},
                    event="error")
    yield "data: [DONE]\n\n"
