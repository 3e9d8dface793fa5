"""The exceptions the LLM modules raise. Each chains the underlying ``openai`` error."""
from __future__ import annotations

__all__ = ["DeployError", "LLMConfigError", "LLMError", "LLMStreamError", "LLMTimeoutError"]


class LLMError(RuntimeError):
    """A chat request failed (after any retries). ``status_code``: the HTTP status, if any."""

    def __init__(self, message: str, *, status_code: int | None = None, partial_text: str = "") -> None:
        super().__init__(message)
        self.status_code = status_code
        self.partial_text = partial_text


class LLMTimeoutError(LLMError, TimeoutError):
    """The server sent nothing for longer than the module's ``timeout``."""


class LLMStreamError(LLMError):
    """The stream broke after tokens were streamed; ``partial_text`` holds what arrived.

    It is not retried: a retry would stream the same text twice.
    """


class LLMConfigError(ValueError):
    """A module is missing its model, key or base URL, or was given a bad setting."""


class DeployError(LLMError):
    """A local inference server did not start, or did not become ready in time."""
