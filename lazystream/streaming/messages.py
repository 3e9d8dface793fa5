"""What a streamified program yields besides its final output: field chunks and status."""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["StatusMessage", "StreamResponse"]


@dataclass(slots=True)
class StreamResponse:
    """A piece of one output field of one predictor, as it streams.

    ``predict_name`` is the predictor's name in ``program.named_predictors()`` (or the
    listener's ``predict_name``); with ``signature_field_name`` it identifies the field.
    ``is_last_chunk`` is true on exactly one chunk per field per predictor call; the repr
    shows it only there, so printed streams read as in the DSPy docs.
    """

    predict_name: str
    signature_field_name: str
    chunk: str
    is_last_chunk: bool = False

    def __repr__(self) -> str:
        last = ", is_last_chunk=True" if self.is_last_chunk else ""
        return (f"StreamResponse(predict_name={self.predict_name!r}, "
                f"signature_field_name={self.signature_field_name!r}, chunk={self.chunk!r}{last})")


@dataclass(slots=True)
class StatusMessage:
    """A status message from a ``StatusMessageProvider`` hook, yielded when the hook fires."""

    message: str
