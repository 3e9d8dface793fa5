"""Fault injection for the scripted engine: errors, cut streams, bad JSON, stalls."""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Faults"]


@dataclass(frozen=True)
class Faults:
    """Which faults the engine injects into chat-completion requests.

    * ``fail_first`` — the first N requests are answered with HTTP ``status`` (500 or 429,
      with a ``Retry-After: retry_after`` header when given);
    * ``drop_first`` — the first N requests get no response: the connection is closed;
    * ``cut_after`` — every stream is cut (connection closed, no ``[DONE]``) after K tokens;
    * ``malformed_tool_json`` — tool-call arguments are sent as invalid JSON (last char cut);
    * ``stall`` — the reply stops for this many seconds after ``stall_after`` tokens
      (``stall_after=0``: before the response headers are sent).
    """

    fail_first: int = 0
    drop_first: int = 0
    status: int = 500
    retry_after: float | None = None
    cut_after: int | None = None
    malformed_tool_json: bool = False
    stall: float = 0.0
    stall_after: int = 0

    def __post_init__(self) -> None:
        _check_int("fail_first", self.fail_first, 0)
        _check_int("drop_first", self.drop_first, 0)
        if not isinstance(self.status, int) or not 400 <= self.status <= 599:
            raise ValueError(f"Faults: status must be an HTTP error code (e.g. 500 or 429), "
                             f"got {self.status!r}")
        if self.cut_after is not None:
            _check_int("cut_after", self.cut_after, 0)
        if self.retry_after is not None and (not isinstance(self.retry_after, (int, float))
                                             or self.retry_after < 0):
            raise ValueError(f"Faults: retry_after must be seconds >= 0, got {self.retry_after!r}")
        if not isinstance(self.stall, (int, float)) or self.stall < 0:
            raise ValueError(f"Faults: stall must be seconds >= 0, got {self.stall!r}")
        _check_int("stall_after", self.stall_after, 0)


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"Faults: {name} must be an int >= {minimum}, got {value!r}")
