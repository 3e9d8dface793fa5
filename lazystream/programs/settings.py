"""Program settings: the LM, adapter and callbacks programs use when given none.

``configure(lm=..., adapter=..., callbacks=[...])`` sets process-wide defaults
(``settings.configure`` is the same function). ``settings.context(...)`` — also
``lazystream.context(...)``, DSPy's ``dspy.context`` — overrides them for a block, in the
current context only: other threads and concurrent asyncio tasks keep their own view, and
executor workers submitted from inside the block (``lazystream.ThreadPoolExecutor`` copies
the context) see the override.

Unset settings read as DSPy's defaults: ``lm`` and ``adapter`` ``None``, ``callbacks``
``[]``, ``allow_tool_async_sync_conversion`` ``False``. Any other name may be set and read
back (DSPy programs keep their own flags there).
"""
from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any

__all__ = ["Settings", "configure", "settings"]

_DEFAULTS: dict[str, Any] = {"lm": None, "adapter": None, "callbacks": (),
                              "allow_tool_async_sync_conversion": False, "track_usage": False}


def lm_string_error(lm: str) -> ValueError:
    """The error for ``configure(lm="openai/gpt-4o-mini")`` (DSPy's wording, and the fix)."""
    return ValueError(
        f"LM must be an instance of `dspy.BaseLM`, not a string. Instead of using a string like "
        f"'dspy.configure(lm=\"{lm}\")', please configure the LM like "
        f"'dspy.configure(lm=dspy.LM(\"{lm}\"))'")


def _check(values: dict[str, Any], where: str) -> None:
    from .adapters.base import Adapter  # late: adapters import nothing from settings
    lm = values.get("lm")
    if isinstance(lm, str):
        raise lm_string_error(lm)
    if lm is not None and not callable(lm):
        raise TypeError(f"{where}: lm must be an LM (e.g. lazystream.LM('openai/gpt-4o-mini')), "
                        f"got {lm!r}")
    callbacks = values.get("callbacks")
    if callbacks is not None and not isinstance(callbacks, (list, tuple)):
        raise TypeError(f"{where}: callbacks must be a list of BaseCallback objects, got "
                        f"{callbacks!r}")
    adapter = values.get("adapter")
    if adapter is not None and not isinstance(adapter, Adapter):
        raise TypeError(f"{where}: adapter must be an adapter instance such as ChatAdapter() or "
                        f"JSONAdapter(), got {adapter!r}")


class Settings:
    """Process-wide defaults plus per-context overrides; read them as attributes.

    ``settings.lm`` / ``settings.adapter`` are ``None`` and ``settings.callbacks`` is ``[]``
    until configured.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._defaults: MappingProxyType[str, Any] = MappingProxyType({})
        self._overrides: ContextVar[MappingProxyType[str, Any]] = ContextVar(
            "lazystream_program_settings", default=MappingProxyType({}))

    def configure(self, **values: Any) -> None:
        """Set process-wide defaults, e.g. ``configure(lm=LM("openai/gpt-4o-mini"))``.

        Raises ``ValueError`` for an ``lm`` given as a model string (DSPy's message, with
        the fix), ``TypeError`` for an ``lm`` that is not callable, an ``adapter`` that is
        not an ``Adapter`` or ``callbacks`` that are not a list.
        """
        _check(values, "configure")
        with self._lock:
            self._defaults = MappingProxyType({**self._defaults, **values})

    @contextlib.contextmanager
    def context(self, **values: Any) -> Iterator[None]:
        """Override settings for the block, in this context only (thread- and task-safe)."""
        _check(values, "settings.context")
        token = self._overrides.set(MappingProxyType({**self._overrides.get(), **values}))
        try:
            yield
        finally:
            self._overrides.reset(token)

    def get(self, name: str, default: Any = None) -> Any:
        """Return setting ``name`` as seen from this context, or ``default``."""
        overrides = self._overrides.get()
        if name in overrides:
            return overrides[name]
        return self._defaults.get(name, default)

    def __getitem__(self, name: str) -> Any:
        return getattr(self, name)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        sentinel = object()
        value = self.get(name, sentinel)
        if value is sentinel:
            if name in _DEFAULTS:
                default = _DEFAULTS[name]
                return list(default) if isinstance(default, tuple) else default
            raise AttributeError(f"settings has no {name!r}; configured: "
                                 f"{', '.join(sorted(self.as_dict())) or '(nothing)'}")
        return value

    def as_dict(self) -> dict[str, Any]:
        """Return the settings as seen from this context."""
        return {**self._defaults, **self._overrides.get()}

    def __repr__(self) -> str:
        return f"Settings({self.as_dict()!r})"


settings = Settings()
configure = settings.configure
