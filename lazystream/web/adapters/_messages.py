"""Which message a bare ``text``/``think`` token belongs to: the open one of its (sid, ns).

Tokens written outside any ``message_start``/``message_end`` pair (a user's own
``FileSystemQueue().enqueue``, an older producer) are attributed to a message named after
their session, lineage and first token's seq; adapters close such messages when the
stream ends.
"""
from __future__ import annotations

from ...events import Event

__all__ = ["Messages", "UsageTotals"]


class Messages:
    """Open messages by (sid, ns)."""

    def __init__(self) -> None:
        self._open: dict[tuple[str, tuple[str, ...]], str] = {}
        self.loose: list[str] = []     # ids of messages opened by a bare token

    def start(self, event: Event) -> str:
        message_id = str(event.data.get("id"))
        self._open[(event.sid, event.ns)] = message_id
        return message_id

    def end(self, event: Event) -> str:
        message_id = str(event.data.get("id"))
        key = (event.sid, event.ns)
        if self._open.get(key) == message_id:
            del self._open[key]
        return message_id

    def of(self, event: Event) -> tuple[str, bool]:
        """Return (message id, opened just now by this bare token) for a text/think event."""
        key = (event.sid, event.ns)
        message_id = self._open.get(key)
        if message_id is not None:
            return message_id, False
        message_id = f"msg_{event.sid}_{event.seq}"
        self._open[key] = message_id
        self.loose.append(message_id)
        return message_id, True


class UsageTotals:
    """The run's token totals: ``run_end``'s when it has them, else the sum of the ``usage`` events."""

    _KEYS = ("prompt_tokens", "completion_tokens", "total_tokens")

    def __init__(self) -> None:
        self.summed: dict[str, int] | None = None

    def add(self, data: object) -> None:
        if isinstance(data, dict):
            total = self.summed or dict.fromkeys(self._KEYS, 0)
            for k in self._KEYS:
                if isinstance(data.get(k), int):
                    total[k] += data[k]
            self.summed = total

    def final(self, run_usage: object) -> dict[str, int] | None:
        return run_usage if isinstance(run_usage, dict) else self.summed
