"""The ChatAdapter wire format: ``[[ ## name ## ]]`` field markers, whole and incremental.

Reading is tolerant: any whitespace (including none) may sit inside a marker, a marker may
sit anywhere in a line, and the ``[[ ## completed ## ]]`` marker may be missing. Any marker
ends the field before it. A field's value is the text between its first marker and the
next marker (or the end), stripped of surrounding whitespace — the same rule for the whole
reply (``sections``) and for the token stream (``ChatFieldScanner``).
"""
from __future__ import annotations

import re

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


def _held_suffix(text: str) -> int:
    """Return where the tail that must be held back starts: trailing whitespace plus any
    suffix that could still grow into a marker."""
    end = len(text)
    q = text.rfind("[")
    if q >= 0:
        if q > 0 and text[q - 1] == "[":
            q -= 1
        if _PREFIX.fullmatch(text, q):
            end = q
    return len(text[:end].rstrip())


class ChatFieldScanner:
    """Releases the text of one field from a ChatAdapter reply fed in arbitrary pieces.

    Text is released as soon as it cannot be part of a marker or of trailing whitespace;
    only those are held back. Leading whitespace after the field's marker is dropped.
    """

    __slots__ = ("_offset", "_pending", "_started", "_state", "field")

    def __init__(self, field: str) -> None:
        self.field = field
        self._pending = ""       # text fed but not yet released or discarded
        self._offset = 0         # reply offset of _pending[0]
        self._state = "before"   # before -> inside -> done
        self._started = False    # a non-whitespace chunk was released

    def feed(self, text: str) -> list[tuple[int, str, bool]]:
        """Consume the next piece of the reply; return the chunks it releases."""
        if self._state == "done" or not text:
            return []
        self._pending += text
        out: list[tuple[int, str, bool]] = []
        if self._state == "before" and not self._seek_marker():
            return out
        m = MARKER.search(self._pending)
        if m is not None:
            out.append(self._final(self._pending[:m.start()], self._offset + m.start()))
            return out
        cut = _held_suffix(self._pending)
        chunk = self._pending[:cut]
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

    def _seek_marker(self) -> bool:
        for m in MARKER.finditer(self._pending):
            if m.group(1) == self.field:
                self._state = "inside"
                self._offset += m.end()
                self._pending = self._pending[m.end():]
                return True
        # Keep only what could still become our marker.
        q = self._pending.rfind("[")
        keep = 0
        if q >= 0:
            if q > 0 and self._pending[q - 1] == "[":
                q -= 1
            if _PREFIX.fullmatch(self._pending, q):
                keep = len(self._pending) - q
        self._offset += len(self._pending) - keep
        self._pending = self._pending[len(self._pending) - keep:]
        return False

    def _final(self, text: str, pos: int) -> tuple[int, str, bool]:
        self._state = "done"
        self._pending = ""
        text = text.rstrip()
        if not self._started:
            text = text.lstrip()
        return (pos, text, True)
