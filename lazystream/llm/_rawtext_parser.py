"""Parse tool calls that raw-text models write as special tokens inside their text.

``RawToolCallParser(format).feed(piece)`` returns the text that is safe to stream now:
everything outside the special sections. A suffix that could be the start of a special
token is held back until the next piece decides it; ``finish()`` returns what is still
held (a partial prefix that turned out not to be a token). Nothing of a section ever
comes out as text, wherever the chunk boundaries fall. ``calls`` holds the parsed calls
in OpenAI message format.

While a section streams, the parser reports the call as it grows: ``on_start(id, name,
index)`` once its name is readable, then ``on_delta(id, piece)`` for each piece of the
arguments' JSON text (the pieces joined are the call's ``arguments``).
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from ..engine.rawtext import RawFormat, get_format
from ._toolcall_stream import new_call_id

__all__ = ["RawToolCallParser"]

_NAME = re.compile(r'"name"\s*:\s*"((?:[^"\\]|\\.)*)"')
_ARGS = re.compile(r'"(?:parameters|arguments)"\s*:\s*(.*?)\s*\}?\s*$', re.DOTALL)
_ARGS_AT = re.compile(r'"(?:parameters|arguments)"\s*:\s*')
_HELD = "} \n\t\r"   # what may still turn out to close the call's object, not its arguments


def _ignore(*_: Any) -> None:
    pass


def _held(buf: str, token: str) -> int:
    """Length of the longest suffix of ``buf`` that is a proper prefix of ``token``."""
    first = token[0]
    start = max(0, len(buf) - len(token) + 1)
    i = buf.find(first, start)
    while i != -1:
        if token.startswith(buf[i:]):
            return len(buf) - i
        i = buf.find(first, i + 1)
    return 0


class RawToolCallParser:
    """Incremental splitter of raw model text into streamable text and tool calls."""

    def __init__(self, fmt: str | RawFormat, on_start: Callable[[str, str, int], None] = _ignore,
                 on_delta: Callable[[str, str], None] = _ignore) -> None:
        self.format = fmt if isinstance(fmt, RawFormat) else get_format(fmt)
        self.calls: list[dict[str, Any]] = []
        self._buf = ""
        self._in_section = False
        self._on_start, self._on_delta = on_start, on_delta
        self._id = ""
        self._started = False
        self._args_at: int | None = None
        self._sent = 0

    def feed(self, piece: str) -> str:
        """Add the next piece of model text; return the text that can be streamed now."""
        start, end = self.format.start, self.format.end
        buf = self._buf + piece if self._buf else piece
        out = []
        while True:
            if self._in_section:
                j = buf.find(end)
                if j < 0:
                    self._progress(buf[:len(buf) - _held(buf, end)])
                    break
                self._add_call(buf[:j])
                buf = buf[j + len(end):]
                self._in_section = False
            else:
                i = buf.find(start)
                if i >= 0:
                    out.append(buf[:i])
                    buf = buf[i + len(start):]
                    self._in_section = True
                    self._id, self._started, self._args_at, self._sent = new_call_id(), False, None, 0
                    continue
                keep = _held(buf, start)
                out.append(buf[:len(buf) - keep] if keep else buf)
                buf = buf[len(buf) - keep:] if keep else ""
                break
        self._buf = buf
        return "".join(out) if len(out) != 1 else out[0]

    def finish(self) -> str:
        """End of the stream: return the held-back text; parse an unterminated section."""
        buf, self._buf = self._buf, ""
        if self._in_section:
            self._in_section = False
            if buf.strip():
                self._add_call(buf)
            return ""
        return buf

    def _progress(self, section: str) -> None:
        """Report what the section so far tells: the call's start, new argument text."""
        if not self._started:
            m = _NAME.search(section)
            if m is None:
                return
            self._started = True
            self._on_start(self._id, m.group(1), len(self.calls))
        if self._args_at is None:
            a = _ARGS_AT.search(section)
            if a is None or a.end() == len(section):
                return   # more blank may follow: the arguments start at their first character
            self._args_at = a.end()
        ready = section[self._args_at:].rstrip(_HELD)
        if len(ready) > self._sent:
            self._on_delta(self._id, ready[self._sent:])
            self._sent = len(ready)

    def _add_call(self, section: str) -> None:
        body = section.strip()
        name, arguments = "", body
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        raw = None
        if self._args_at is not None:
            raw = section[self._args_at:].rstrip()
            raw = raw[:-1].rstrip() if raw.endswith("}") else raw
        if isinstance(data, dict) and isinstance(data.get("name"), str):
            name = data["name"]
            args = data.get(self.format.args_key, data.get("arguments", data.get("parameters", {})))
            arguments = args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)
            if raw is not None and not isinstance(args, str):
                try:
                    if json.loads(raw) == args:
                        arguments = raw   # the text as the model wrote it: what the deltas sent
                except ValueError:
                    pass
        else:
            # Malformed JSON: keep what can be read, so the caller can report it to the model.
            m = _NAME.search(body)
            name = m.group(1) if m else ""
            a = _ARGS.search(body)
            arguments = a.group(1) if a else body
        if not self._started:
            self._started = True
            self._on_start(self._id, name, len(self.calls))
        if arguments.startswith(section[self._args_at:self._args_at + self._sent] if self._args_at is not None else ""):
            rest = arguments[self._sent:]
        else:
            rest = ""   # the streamed pieces and the parsed call disagree; the call is the truth
        if rest:
            self._on_delta(self._id, rest)
        self.calls.append({"id": self._id, "type": "function",
                           "function": {"name": name, "arguments": arguments}})
