"""Incremental reader of one string value in a JSON object reply.

Fed the reply in arbitrary pieces, it releases the *decoded* text of the target key's
string value as it arrives: no quotes, escapes turned into the characters they stand for.
Only an escape sequence cut by a piece boundary (``\\``, ``\\u00``, a lone high surrogate)
is held back. Text before the first ``{`` (a code fence, say) is skipped; values of other
keys, nested or not, are skipped with their strings and brackets honoured.

If the target value is not a string (a number, a list, an object), its raw JSON text is
released as it arrives, holding back only trailing whitespace; the chunks concatenate to
the value's JSON text.
"""
from __future__ import annotations

__all__ = ["JSONFieldScanner"]

_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r",
            "t": "\t"}


class JSONFieldScanner:
    """Releases the decoded string value of ``field`` from a streamed JSON object."""

    def __init__(self, field: str) -> None:
        self.field = field
        self._state = "pre"       # pre, key_wait, key, colon, value_wait, target, raw, skip, done
        self._key: list[str] = []
        self._is_target = False
        self._esc = ""            # a pending escape sequence, starting with the backslash
        self._high = ""           # a decoded high surrogate waiting for its low half
        self._depth = 0           # nesting inside a skipped value
        self._in_str = False      # inside a string of a skipped value
        self._skip_esc = False
        self._raw: list[str] = []
        self._pos = 0

    def feed(self, text: str) -> list[tuple[int, str, bool]]:
        """Consume the next piece of the reply; return the chunks it releases."""
        out: list[tuple[int, str, bool]] = []
        released: list[str] = []
        for ch in text:
            self._pos += 1
            if self._state == "done":
                break
            if self._state == "target":
                if self._target_char(ch, released):
                    out.append((self._pos - 1, "".join(released), True))
                    released = []
                    self._state = "done"
                continue
            self._structural_char(ch, out)
        if released:
            out.append((self._pos, "".join(released), False))
        if self._state == "raw" and self._raw:
            text = "".join(self._raw)
            ready = text.rstrip()   # trailing whitespace may end the value: hold it
            if ready:
                out.append((self._pos - (len(text) - len(ready)), ready, False))
                self._raw = [text[len(ready):]] if len(ready) < len(text) else []
        return out

    def finish(self) -> list[tuple[int, str, bool]]:
        """The reply ended: close an unterminated target value with a last chunk."""
        state, self._state = self._state, "done"
        if state == "target":
            return [(self._pos, self._high, True)]
        if state == "raw":
            return [(self._pos, "".join(self._raw).strip(), True)]
        return []

    def _target_char(self, ch: str, released: list[str]) -> bool:
        """Decode one character of the target string; return True at its closing quote."""
        if self._esc:
            self._esc += ch
            if self._esc[1] != "u":
                decoded = _ESCAPES.get(ch, ch)
                self._esc = ""
                self._emit(decoded, released)
            elif len(self._esc) == 6:
                code = int(self._esc[2:], 16)  # noqa: FURB166 - the prefix is \u, not 0x
                self._esc = ""
                self._emit(chr(code), released)
            return False
        if ch == "\\":
            self._esc = ch
            return False
        if ch == '"':
            if self._high:
                released.append(self._high)
                self._high = ""
            return True
        self._emit(ch, released)
        return False

    def _emit(self, ch: str, released: list[str]) -> None:
        if self._high:
            if "\udc00" <= ch <= "\udfff":
                ch = (chr(0x10000 + ((ord(self._high) - 0xD800) << 10) + (ord(ch) - 0xDC00)))
            else:
                released.append(self._high)
            self._high = ""
        if "\ud800" <= ch <= "\udbff":
            self._high = ch
            return
        released.append(ch)

    def _structural_char(self, ch: str, out: list[tuple[int, str, bool]]) -> None:
        state = self._state
        if state == "pre":
            if ch == "{":
                self._state = "key_wait"
        elif state == "key_wait":
            if ch == '"':
                self._key = []
                self._state = "key"
            elif ch == "}":
                self._state = "done"
        elif state == "key":
            if self._skip_esc:
                self._key.append(_ESCAPES.get(ch, ch))
                self._skip_esc = False
            elif ch == "\\":
                self._skip_esc = True
            elif ch == '"':
                self._is_target = "".join(self._key) == self.field
                self._state = "colon"
            else:
                self._key.append(ch)
        elif state == "colon":
            if ch == ":":
                self._state = "value_wait"
        elif state == "value_wait":
            if ch.isspace():
                return
            if ch == '"' and self._is_target:
                self._state = "target"
                return
            self._state = "raw" if self._is_target else "skip"
            self._depth, self._in_str, self._skip_esc = 0, False, False
            self._raw = []
            self._skip_char(ch, out)
        elif state in ("skip", "raw"):
            self._skip_char(ch, out)

    def _skip_char(self, ch: str, out: list[tuple[int, str, bool]]) -> None:
        """Walk one character of a non-target value (or a non-string target value)."""
        if self._in_str:
            if self._skip_esc:
                self._skip_esc = False
            elif ch == "\\":
                self._skip_esc = True
            elif ch == '"':
                self._in_str = False
        elif ch == '"':
            self._in_str = True
        elif ch in "[{":
            self._depth += 1
        elif ch in "]}" and self._depth > 0:
            self._depth -= 1
        elif self._depth == 0 and ch in ",}":
            self._end_value(ch, out)
            return
        if self._state == "raw":
            self._raw.append(ch)

    def _end_value(self, ch: str, out: list[tuple[int, str, bool]]) -> None:
        if self._state == "raw":
            out.append((self._pos - 1, "".join(self._raw).strip(), True))
            self._state = "done"
            return
        self._state = "key_wait" if ch == "," else "done"
