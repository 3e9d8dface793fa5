"""``StatusMessageProvider``: the hooks that turn program steps into status messages.

Override any hook; return a string to emit a ``StatusMessage``, or ``None`` for nothing.
The default provider reports tool calls only, with DSPy's messages::

    Calling tool {name}...
    Tool calling finished! Querying the LLM with tool calling results...

Hooks fire while the program runs (each message is a ``status`` event of the run's
session, read by the stream at once), not at the end. An ``*_end_status_message`` hook
may take ``(outputs)`` — DSPy's form — or ``(instance, outputs)``; both are called right.
"""
from __future__ import annotations

import inspect
from typing import Any

from ..module import ModuleBase
from ..programs import LM, Tool
from ..queue import emit

__all__ = ["StatusMessageProvider"]


class StatusMessageProvider:
    """Base class of status providers; every hook returns a message or ``None``."""

    def tool_start_status_message(self, instance: Any, inputs: dict[str, Any]) -> str | None:
        """Before a ``Tool`` runs."""
        return f"Calling tool {instance.name}..."

    def tool_end_status_message(self, outputs: Any) -> str | None:
        """After a ``Tool`` returned ``outputs``."""
        return "Tool calling finished! Querying the LLM with tool calling results..."

    def module_start_status_message(self, instance: Any, inputs: dict[str, Any]) -> str | None:
        """Before a module (a ``Module``, ``Predict``, …) runs."""
        return None

    def module_end_status_message(self, outputs: Any) -> str | None:
        """After a module returned ``outputs``."""
        return None

    def lm_start_status_message(self, instance: Any, inputs: dict[str, Any]) -> str | None:
        """Before an ``LM`` call."""
        return None

    def lm_end_status_message(self, outputs: Any) -> str | None:
        """After an ``LM`` call returned ``outputs`` (the list of reply texts)."""
        return None


class _StatusHooks:
    """Module callbacks (``lazystream.module.callbacks``) that call a provider's hooks."""

    def __init__(self, provider: StatusMessageProvider) -> None:
        self.provider = provider

    def on_module_start(self, module: ModuleBase, args: tuple, kwargs: dict) -> None:
        inputs = dict(kwargs) if not args else {"args": list(args), **kwargs}
        hook = f"{_kind(module)}_start_status_message"
        self._emit(hook, getattr(self.provider, hook)(module, inputs))

    def on_module_end(self, module: ModuleBase, output: Any, exception: BaseException | None) -> None:
        if exception is not None:
            return  # the error reaches the caller itself; no "finished" message for it
        hook = f"{_kind(module)}_end_status_message"
        fn = getattr(self.provider, hook)
        message = fn(module, output) if _takes_instance(fn) else fn(output)
        self._emit(hook, message)

    def _emit(self, hook: str, message: Any) -> None:
        if message is None:
            return
        if not isinstance(message, str):
            raise TypeError(f"{type(self.provider).__name__}.{hook} returned {message!r}; a "
                            "status hook must return a str or None")
        emit("status", message)


def _kind(module: ModuleBase) -> str:
    if isinstance(module, Tool):
        return "tool"
    if isinstance(module, LM):
        return "lm"
    return "module"


def _takes_instance(fn: Any) -> bool:
    """True when an end hook is written ``(self, instance, outputs)``."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2
