"""Parse tool calls that raw-text models write as special tokens inside their text.

``RawToolCallParser(format).feed(piece)`` returns the text that is safe to stream now:
everything outside the special sections. A suffix that could be the start of a special
token is held back until the next piece decides it; ``finish()`` returns what is still
held (a partial prefix that turned out not to be a token). Nothing of a section ever
comes out as text, wherever the chunk boundaries fall. ``calls`` holds the parsed calls
in OpenAI message format.
"""
from __future__ import annotations

import json
import re
import uuid
from typing import Any

from .engine.rawtext import RawFormat, get_format

__all__ = ["RawToolCallParser"]

_NAME = re.compile(r'"name"\s*:\s*"((?:[^"\\]|\\.)*)"')
_ARGS = re.compile(r'"(?:parameters|arguments)"\s*:\s*(.*?)\s*\}?\s*$', re.S)


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

    def __init__(self, fmt: str | RawFormat) -> None:
        self.format = fmt if isinstance(fmt, RawFormat) else get_format(fmt)
        self.calls: list[dict[str, Any]] = []
        self._buf = ""
        self._in_section = False

    def feed(self, piece: str) -> str:
        """Add the next piece of model text; return the text that can be streamed now."""
        start, end = self.format.start, self.format.end
        buf = self._buf + piece if self._buf else piece
        out = []
        while True:
            if self._in_section:
                j = buf.find(end)
                if j < 0:
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

    def _add_call(self, section: str) -> None:
        body = section.strip()
        name, arguments = "", body
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("name"), str):
            name = data["name"]
            args = data.get(self.format.args_key, data.get("arguments", data.get("parameters", {})))
            arguments = args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)
        else:
            # Malformed JSON: keep what can be read, so the caller can report it to the model.
            m = _NAME.search(body)
            name = m.group(1) if m else ""
            a = _ARGS.search(body)
            arguments = a.group(1) if a else body
        self.calls.append({"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function",
                           "function": {"name": name, "arguments": arguments}})
