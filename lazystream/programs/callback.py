"""DSPy's callbacks: ``BaseCallback`` handlers around module, LM, adapter and tool calls.

Handlers come from ``settings.callbacks`` (``configure(callbacks=[...])`` or
``context(callbacks=[...])``) plus the ``callbacks=`` of the instance itself
(``Predict(sig, callbacks=[...])``, ``LM(model, callbacks=[...])``). Each call gets a fresh
``call_id`` (a uuid hex) that ties its start handler to its end handler; ``ACTIVE_CALL_ID``
holds the id of the call running now, so a handler can find its parent.

As in DSPy, a handler that raises is logged as a warning and never fails the call.
"""
from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from typing import Any, TypeVar

from .settings import settings

__all__ = ["ACTIVE_CALL_ID", "BaseCallback", "acall_with_callbacks", "active_callbacks",
           "call_with_callbacks"]

logger = logging.getLogger(__name__)

ACTIVE_CALL_ID: ContextVar[str | None] = ContextVar("lazystream_active_call_id", default=None)

T = TypeVar("T")


class BaseCallback:
    """Subclass it and override the handlers you need; every handler does nothing by default.

    ``on_<kind>_start(call_id, instance, inputs)`` runs before the call and
    ``on_<kind>_end(call_id, outputs, exception)`` after it, for the kinds ``module``
    (``Module``/``Predict`` calls; ``inputs`` is ``{"args": ..., "kwargs": ...}``), ``lm``
    (``inputs``: ``prompt``, ``messages``, ``kwargs``; ``outputs``: the list of replies),
    ``adapter_format`` / ``adapter_parse`` and ``tool`` (``inputs``: ``{"kwargs": ...}``).
    On an exception ``outputs`` is ``None`` and ``exception`` is the error.
    """

    def on_module_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        """Before a module's ``forward`` runs."""

    def on_module_end(self, call_id: str, outputs: Any | None,
                      exception: BaseException | None = None) -> None:
        """After a module's ``forward`` returned or raised."""

    def on_lm_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        """Before an ``LM`` call."""

    def on_lm_end(self, call_id: str, outputs: Any | None,
                  exception: BaseException | None = None) -> None:
        """After an ``LM`` call."""

    def on_adapter_format_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        """Before an adapter formats the prompt."""

    def on_adapter_format_end(self, call_id: str, outputs: Any | None,
                              exception: BaseException | None = None) -> None:
        """After an adapter formatted the prompt."""

    def on_adapter_parse_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        """Before an adapter parses the LM's reply."""

    def on_adapter_parse_end(self, call_id: str, outputs: Any | None,
                             exception: BaseException | None = None) -> None:
        """After an adapter parsed the LM's reply."""

    def on_tool_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        """Before a ``Tool`` runs."""

    def on_tool_end(self, call_id: str, outputs: Any | None,
                    exception: BaseException | None = None) -> None:
        """After a ``Tool`` returned or raised."""

    def on_evaluate_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        """Kept for DSPy code that overrides it; lazystream has no ``Evaluate``."""

    def on_evaluate_end(self, call_id: str, outputs: Any | None,
                        exception: BaseException | None = None) -> None:
        """Kept for DSPy code that overrides it; lazystream has no ``Evaluate``."""


def active_callbacks(instance: Any) -> list[Any]:
    """Return ``settings.callbacks`` followed by the instance's own ``callbacks``."""
    return [*(settings.callbacks or ()), *(getattr(instance, "callbacks", None) or ())]


def _start(cbs: list[Any], kind: str, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
    for cb in cbs:
        handler = getattr(cb, f"on_{kind}_start", None)
        if handler is None:
            continue
        try:
            handler(call_id=call_id, instance=instance, inputs=inputs)
        except Exception as e:  # noqa: BLE001 - DSPy's rule: a handler never fails the call
            logger.warning("Error when calling callback %r: %s", cb, e)


def _end(cbs: list[Any], kind: str, call_id: str, outputs: Any,
         exception: BaseException | None) -> None:
    for cb in cbs:
        handler = getattr(cb, f"on_{kind}_end", None)
        if handler is None:
            continue
        try:
            handler(call_id=call_id, outputs=outputs, exception=exception)
        except Exception as e:  # noqa: BLE001 - DSPy's rule: a handler never fails the call
            logger.warning("Error when applying callback %r's end handler: %s", cb, e)


class _Call:
    """One call seen by the handlers: its id, and the outputs once it returned."""

    __slots__ = ("call_id", "outputs")

    def __init__(self, call_id: str) -> None:
        self.call_id = call_id
        self.outputs: Any = None


@contextlib.contextmanager
def _around(cbs: list[Any], kind: str, instance: Any, inputs: dict[str, Any]) -> Iterator[_Call]:
    call = _Call(uuid.uuid4().hex)
    _start(cbs, kind, call.call_id, instance, inputs)
    token = ACTIVE_CALL_ID.set(call.call_id)
    error = None
    try:
        yield call
    except BaseException as e:
        error = e
        raise
    finally:
        ACTIVE_CALL_ID.reset(token)
        _end(cbs, kind, call.call_id, None if error else call.outputs, error)


def call_with_callbacks(instance: Any, kind: str, inputs: dict[str, Any],
                        fn: Callable[[], T]) -> T:
    """Return ``fn()``, with the active callbacks' ``kind`` handlers around it."""
    cbs = active_callbacks(instance)
    if not cbs:
        return fn()
    with _around(cbs, kind, instance, inputs) as call:
        call.outputs = fn()
        return call.outputs


async def acall_with_callbacks(instance: Any, kind: str, inputs: dict[str, Any],
                               fn: Callable[[], Awaitable[T]]) -> T:
    """Await ``fn()``, with the active callbacks' ``kind`` handlers around it."""
    cbs = active_callbacks(instance)
    if not cbs:
        return await fn()
    with _around(cbs, kind, instance, inputs) as call:
        call.outputs = await fn()
        return call.outputs
