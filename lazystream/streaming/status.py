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
from ..module import _callbacks as _module_callbacks
from ..programs import LM, BaseCallback, Tool
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
    """Module callbacks (``lazystream.module.callbacks``) that call a provider's hooks and
    write the messages into the run's session ``sid``."""

    def __init__(self, provider: StatusMessageProvider, sid: str) -> None:
        self.provider = provider
        self.sid = sid

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
        emit("status", message, sid=self.sid)


class _StatusCallback(BaseCallback):
    """The status hooks as the ``BaseCallback`` streamify adds to ``settings.callbacks``.

    In the run's own context the module callbacks fire the hooks, and this does nothing.
    It fires them where those do not reach: code that starts a plain thread and carries
    ``settings.callbacks`` into it (``with dspy.context(callbacks=captured): ...``), as DSPy
    users do. The messages go to the run's session either way.
    """

    def __init__(self, hooks: _StatusHooks) -> None:
        self.hooks = hooks
        self._open: dict[str, Any] = {}   # call_id -> the instance whose start hook fired

    def _covered(self) -> bool:
        return self.hooks in _active_module_callbacks()

    def _start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        if self._covered():
            return
        self._open[call_id] = instance
        if isinstance(instance, Tool):
            inputs = dict(inputs.get("kwargs", {}))
        elif isinstance(instance, LM):
            inputs = {**({"prompt": inputs["prompt"]} if inputs.get("prompt") is not None else {}),
                      **({"messages": inputs["messages"]} if inputs.get("messages") else {}),
                      **inputs.get("kwargs", {})}
        else:
            args, kwargs = inputs.get("args", ()), inputs.get("kwargs", {})
            inputs = dict(kwargs) if not args else {"args": list(args), **kwargs}
        hook = f"{_kind(instance)}_start_status_message"
        self.hooks._emit(hook, getattr(self.hooks.provider, hook)(instance, inputs))

    def _end(self, call_id: str, outputs: Any | None, exception: BaseException | None = None) -> None:
        instance = self._open.pop(call_id, None)
        if instance is not None:
            self.hooks.on_module_end(instance, outputs, exception)

    on_module_start = on_lm_start = on_tool_start = _start
    on_module_end = on_lm_end = on_tool_end = _end


def _active_module_callbacks() -> tuple[Any, ...]:
    return _module_callbacks.get()


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
