"""Incremental reader of one field of an ``XMLAdapter`` reply: the text inside ``<field>``.

Fed the reply in arbitrary pieces, it releases the field's text as soon as it cannot be
part of the closing tag ``</field>`` or of trailing whitespace; only those are held back.
Leading whitespace after ``<field>`` is dropped, trailing whitespace before ``</field>``
never released, so the chunks concatenate to the value ``XMLAdapter.parse`` returns.
"""
from __future__ import annotations

from .marked_scanner import MarkedFieldScanner

__all__ = ["XMLFieldScanner"]


def _partial_suffix(text: str, tag: str) -> int:
    """Return the length of the longest suffix of ``text`` that is a proper prefix of ``tag``."""
    for n in range(min(len(text), len(tag) - 1), 0, -1):
        if tag.startswith(text[-n:]):
            return n
    return 0


class XMLFieldScanner(MarkedFieldScanner):
    """Releases the text of ``<field>…</field>`` from a reply fed in pieces."""

    __slots__ = ("_close", "_open")

    def __init__(self, field: str) -> None:
        super().__init__(field)
        self._open = f"<{field}>"
        self._close = f"</{field}>"

    def _start(self, pending: str) -> tuple[int, int]:
        at = pending.find(self._open)
        if at >= 0:
            return at + len(self._open), -1
        return -1, _partial_suffix(pending, self._open)

    def _end(self, pending: str) -> int:
        return pending.find(self._close)

    def _releasable(self, pending: str) -> int:
        return len(pending) - _partial_suffix(pending, self._close)
