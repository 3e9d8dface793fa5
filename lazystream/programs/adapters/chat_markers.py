"""The ChatAdapter wire format: ``[[ ## name ## ]]`` field markers, whole and incremental.

Reading is tolerant: any whitespace (including none) may sit inside a marker, a marker may
sit anywhere in a line, and the ``[[ ## completed ## ]]`` marker may be missing. Any marker
ends the field before it. A field's value is the text between its first marker and the
next marker (or the end), stripped of surrounding whitespace — the same rule for the whole
reply (``sections``) and for the token stream (``ChatFieldScanner``).
"""
from __future__ import annotations

import re

from .marked_scanner import MarkedFieldScanner

__all__ = ["MARKER", "ChatFieldScanner", "marker", "sections"]

MARKER = re.compile(r"\[\[\s*##\s*(\w+)\s*##\s*\]\]")

# Matches every prefix of a marker (fullmatch): the nested optional groups mirror MARKER.
_PREFIX = re.compile(
    r"\[(?:\[(?:\s*(?:#(?:#(?:\s*(?:\w+(?:\s*(?:#(?:#(?:\s*(?:\](?:\])?)?)?)?)?)?)?)?)?)?)?)?")


def marker(name: str) -> str:
    """Return the canonical marker of field ``name``: ``[[ ## name ## ]]``."""
    return f"[[ ## {name} ## ]]"


def sections(text: str) -> dict[str, str]:
    """Return ``{field name: stripped value}`` for each marker in ``text``; the first wins."""
    found: dict[str, str] = {}
    matches = list(MARKER.finditer(text))
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        found.setdefault(m.group(1), text[m.end():end].strip())
    return found


class ChatFieldScanner(MarkedFieldScanner):
    """Releases the text of one field from a ChatAdapter reply fed in arbitrary pieces.

    Text is released as soon as it cannot be part of a marker or of trailing whitespace;
    only those are held back. Any marker ends the field.
    """

    __slots__ = ()

    def _start(self, pending: str) -> tuple[int, int]:
        for m in MARKER.finditer(pending):
            if m.group(1) == self.field:
                return m.end(), -1
        return -1, len(pending) - _marker_tail(pending)

    def _end(self, pending: str) -> int:
        m = MARKER.search(pending)
        return m.start() if m is not None else -1

    def _releasable(self, pending: str) -> int:
        return _marker_tail(pending)


def _marker_tail(text: str) -> int:
    """Return where a suffix of ``text`` that could still grow into a marker starts."""
    q = text.rfind("[")
    if q >= 0:
        if q > 0 and text[q - 1] == "[":
            q -= 1
        if _PREFIX.fullmatch(text, q):
            return q
    return len(text)
