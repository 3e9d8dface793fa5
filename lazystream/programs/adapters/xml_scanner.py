"""Incremental reader of one field of an ``XMLAdapter`` reply: the text inside ``<field>``.

Fed the reply in arbitrary pieces, it releases the field's text as soon as it cannot be
part of the closing tag ``</field>`` or of trailing whitespace; only those are held back.
Leading whitespace after ``<field>`` is dropped, trailing whitespace before ``</field>``
never released, so the chunks concatenate to the value ``XMLAdapter.parse`` returns.
"""
from __future__ import annotations

__all__ = ["XMLFieldScanner"]


def _partial_suffix(text: str, tag: str) -> int:
    """Return the length of the longest suffix of ``text`` that is a proper prefix of ``tag``."""
    for n in range(min(len(text), len(tag) - 1), 0, -1):
        if tag.startswith(text[-n:]):
            return n
    return 0


class XMLFieldScanner:
    """Releases the text of ``<field>…</field>`` from a reply fed in pieces."""

    __slots__ = ("_close", "_offset", "_open", "_pending", "_started", "_state", "field")

    def __init__(self, field: str) -> None:
        self.field = field
        self._open = f"<{field}>"
        self._close = f"</{field}>"
        self._pending = ""
        self._offset = 0          # reply offset of _pending[0]
        self._state = "before"    # before -> inside -> done
        self._started = False

    def feed(self, text: str) -> list[tuple[int, str, bool]]:
        """Consume the next piece of the reply; return the chunks it releases."""
        if self._state == "done" or not text:
            return []
        self._pending += text
        if self._state == "before":
            at = self._pending.find(self._open)
            if at < 0:
                keep = _partial_suffix(self._pending, self._open)
                self._offset += len(self._pending) - keep
                self._pending = self._pending[len(self._pending) - keep:]
                return []
            cut = at + len(self._open)
            self._offset += cut
            self._pending = self._pending[cut:]
            self._state = "inside"
        at = self._pending.find(self._close)
        if at >= 0:
            return [self._final(self._pending[:at], self._offset + at)]
        held = _partial_suffix(self._pending, self._close)
        cut = len(self._pending[:len(self._pending) - held].rstrip())
        chunk = self._pending[:cut]
        out = []
        if not self._started:
            chunk = chunk.lstrip()
        if chunk:
            self._started = True
            out.append((self._offset + cut, chunk, False))
        self._offset += cut
        self._pending = self._pending[cut:]
        return out

    def finish(self) -> list[tuple[int, str, bool]]:
        """The reply ended: release the held text as the last chunk, if the field began."""
        if self._state != "inside":
            self._state = "done"
            return []
        return [self._final(self._pending, self._offset + len(self._pending))]

    def _final(self, text: str, pos: int) -> tuple[int, str, bool]:
        self._state = "done"
        self._pending = ""
        text = text.rstrip()
        if not self._started:
            text = text.lstrip()
        return (pos, text, True)
