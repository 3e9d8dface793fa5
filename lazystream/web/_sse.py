"""The Server-Sent Events wire format, both ways: what the server writes, what the client parses.

One session event is one SSE message::

    id: <seq>
    event: <kind>
    data: <Event.to_dict() as one line of JSON>

A stream that reaches the session's ``end`` event closes with ``data: [DONE]``. A stream
the server has to stop (the producer died, the idle timeout passed, the store failed)
closes with an ``event: error`` message that has no ``id`` and whose data is
``{"type", "message"}`` — a session's own ``error`` events always carry an ``id``, so a
reader can tell the two apart.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from ..events import Event

__all__ = ["DONE", "KEEPALIVE", "Message", "encode_error", "encode_event", "event_of", "parse"]

DONE = b"data: [DONE]\n\n"
KEEPALIVE = b": keepalive\n\n"


def encode_event(event: Event) -> bytes:
    """Return one session event as an SSE message."""
    # A kind is a short word; CR/LF in one would split the field, so they never reach the wire.
    kind = event.kind.replace("\r", " ").replace("\n", " ")
    data = json.dumps(event.to_dict(), ensure_ascii=False, default=repr)
    return f"id: {event.seq}\nevent: {kind}\ndata: {data}\n\n".encode()


def encode_error(type_: str, message: str) -> bytes:
    """Return the server's closing ``error`` message (no ``id``: it is not a session event)."""
    data = json.dumps({"type": type_, "message": message}, ensure_ascii=False)
    return f"event: error\ndata: {data}\n\n".encode()


@dataclass(frozen=True, slots=True)
class Message:
    """One dispatched SSE message; ``id`` is ``None`` when the message had no ``id`` field."""

    event: str
    data: str
    id: str | None


def parse(lines: Iterable[bytes]) -> Iterator[Message]:
    """Yield the messages of an SSE byte stream given line by line (as ``readline`` gives them).

    Follows the WHATWG rules that matter here: ``\\n``/``\\r\\n`` line ends, ``:`` comments,
    one optional space after the colon, ``data`` lines joined by ``\\n``, messages without
    data are not dispatched. A message cut off before its blank line is never yielded.
    """
    event, id_ = "", None
    data: list[str] = []
    first = True
    for raw in lines:
        line = raw.decode("utf-8", errors="replace")
        if first:
            line, first = line.removeprefix("\ufeff"), False
        if not line.endswith("\n"):
            return   # the stream ended in the middle of a line: drop the partial message
        line = line.rstrip("\r\n")
        if not line:
            if data:
                yield Message(event or "message", "\n".join(data), id_)
            event, data, id_ = "", [], None
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "data":
            data.append(value)
        elif field == "event":
            event = value
        elif field == "id" and "\0" not in value:
            id_ = value


def event_of(message: Message) -> Event:
    """Return the session ``Event`` a message carries. Raises ``ValueError`` if it carries none."""
    try:
        d: dict[str, Any] = json.loads(message.data)
        return Event(int(d["seq"]), d["sid"], d["queue"], d["kind"], tuple(d["ns"]), d["data"], float(d["ts"]))
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"SSE message {message.event!r} (id {message.id!r}) is not a lazystream event: "
                         f"{message.data[:200]!r}") from e
