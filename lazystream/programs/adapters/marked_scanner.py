"""The incremental reader shared by the marker formats (ChatAdapter's ``[[ ## f ## ]]``,
XMLAdapter's ``<f>…</f>``): release a field's text as soon as it cannot be part of the
marker that ends it.

A subclass says where its field starts (``_start``), where it ends (``_end``) and how much
of the pending tail could still grow into the end marker (``_releasable``). The rules are
the same for both formats: leading whitespace after the start marker is dropped, trailing
whitespace before the end marker is never released, and exactly one chunk — the last — is
marked, so the chunks concatenate to the value the adapter's ``parse`` returns.
"""
from __future__ import annotations

__all__ = ["MarkedFieldScanner"]


class MarkedFieldScanner:
    """Releases the text of one field from a reply fed in arbitrary pieces."""

    __slots__ = ("_offset", "_pending", "_started", "_state", "field")

    def __init__(self, field: str) -> None:
        self.field = field
        self._pending = ""       # text fed but not yet released or discarded
        self._offset = 0         # reply offset of _pending[0]
        self._state = "before"   # before -> inside -> done
        self._started = False    # a non-whitespace chunk was released

    # ---- what a format defines ---------------------------------------------------------
    def _start(self, pending: str) -> tuple[int, int]:
        """Return ``(end of the start marker, -1)`` if ``pending`` holds it, else
        ``(-1, length of the tail that could still become it)``."""
        raise NotImplementedError

    def _end(self, pending: str) -> int:
        """Return where the marker ending the field starts in ``pending``, or -1."""
        raise NotImplementedError

    def _releasable(self, pending: str) -> int:
        """Return how much of ``pending`` (no end marker in it) cannot be part of one."""
        raise NotImplementedError

    # ---- the shared reader -------------------------------------------------------------
    def feed(self, text: str) -> list[tuple[int, str, bool]]:
        """Consume the next piece of the reply; return the chunks it releases."""
        if self._state == "done" or not text:
            return []
        self._pending += text
        if self._state == "before" and not self._seek():
            return []
        at = self._end(self._pending)
        if at >= 0:
            return [self._final(self._pending[:at], self._offset + at)]
        cut = len(self._pending[:self._releasable(self._pending)].rstrip())
        chunk = self._pending[:cut]
        if not self._started:
            chunk = chunk.lstrip()
        out = []
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

    def _seek(self) -> bool:
        end, keep = self._start(self._pending)
        if end >= 0:
            self._state = "inside"
            self._offset += end
            self._pending = self._pending[end:]
            return True
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
