"""``ModuleBase``: naming, traces, streaming and start-up for every lazystream module.

Subclass it and implement ``forward``. Calling a module runs ``forward`` with the
module's name appended to the lineage (``ns``) of everything it writes. With
``return_trace=True`` a trace event goes to ``lazy_trace`` when the call returns (or an
error trace, and the exception is re-raised). Module authors stream with
``self.stream_output(text)`` and write other events with ``self.emit(kind, data)``.

A module with ``return_trace=False`` that does not stream writes nothing to any queue:
the cost of a call is a ContextVar push and pop.
"""
from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from .queue import emit
from .session import _ns

__all__ = ["ModuleBase", "callbacks"]

_callbacks: ContextVar[tuple[Any, ...]] = ContextVar("lazystream_module_callbacks", default=())


@contextlib.contextmanager
def callbacks(obj: Any) -> Iterator[None]:
    """Call ``obj.on_module_start(module, args, kwargs)`` and
    ``obj.on_module_end(module, output, exception)`` around every module call in this
    context (and in executor workers submitted from it)."""
    token = _callbacks.set(_callbacks.get() + (obj,))
    try:
        yield
    finally:
        _callbacks.reset(token)


def _fire(hook: str, *args: Any) -> None:
    for cb in _callbacks.get():
        fn = getattr(cb, hook, None)
        if fn is not None:
            fn(*args)


def _brief(value: Any) -> str:
    """The trace text of a value: strings as they are, anything else as its ``str``."""
    return value if isinstance(value, str) else str(value)


class ModuleBase:
    """Base class of every module; see the module docstring."""

    _return_trace = False
    _explicit_name: str | None = None
    _attr_name: str | None = None
    _started = False

    def __init__(self, *, return_trace: bool = False, name: str | None = None) -> None:
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f"{type(self).__name__}: name must be a non-empty string, got {name!r}")
        self._return_trace = bool(return_trace)
        self._explicit_name = name

    def __setattr__(self, key: str, value: Any) -> None:
        # A submodule takes the name of the first attribute that holds it.
        if isinstance(value, ModuleBase) and value._attr_name is None and not key.startswith("_"):
            object.__setattr__(value, "_attr_name", key)
        object.__setattr__(self, key, value)

    @property
    def name(self) -> str:
        """The module's name in lineages: explicit, else its attribute name, else its class."""
        return self._explicit_name or self._attr_name or type(self).__name__.lower()

    @property
    def return_trace(self) -> bool:
        return self._return_trace

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Compute the module's output. Subclasses implement it."""
        raise NotImplementedError(f"{type(self).__name__} must implement forward(*args, **kwargs)")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        token = _ns.set(_ns.get() + (self.name,))
        try:
            if not self._return_trace and not _callbacks.get():
                return self.forward(*args, **kwargs)
            return self._traced_call(args, kwargs)
        finally:
            _ns.reset(token)

    def _traced_call(self, args: tuple, kwargs: dict) -> Any:
        _fire("on_module_start", self, args, kwargs)
        start = time.perf_counter()
        try:
            output = self.forward(*args, **kwargs)
        except BaseException as e:
            if self._return_trace:
                self._trace(args, kwargs, None, time.perf_counter() - start, e)
            _fire("on_module_end", self, None, e)
            raise
        if self._return_trace:
            self._trace(args, kwargs, output, time.perf_counter() - start, None)
        _fire("on_module_end", self, output, None)
        return output

    def _trace(self, args: tuple, kwargs: dict, output: Any, duration: float, error: BaseException | None) -> None:
        inputs: Any = args[0] if len(args) == 1 and not kwargs else {"args": list(args), "kwargs": kwargs}
        err = None if error is None else {"type": type(error).__name__, "message": str(error)}
        emit("trace", {
            "text": self._trace_text(output) if error is None else f"{type(error).__name__}: {error}",
            "module": type(self).__name__, "path": ".".join(_ns.get()),
            "input": inputs, "output": output, "duration": duration, "error": err,
        }, lenient=True)

    def _trace_text(self, output: Any) -> str:
        """The text a trace of ``output`` shows (what ``lazy_trace`` readers print)."""
        return _brief(output)

    # --- streaming, for module authors -----------------------------------------------
    def stream_output(self, text: str) -> None:
        """Write ``text`` as a ``text`` event of the current session (``FileSystemQueue()``)."""
        emit("text", text)

    def emit(self, kind: str, data: Any) -> None:
        """Write an event of ``kind`` under the current session with ``ns`` = this module's path."""
        emit(kind, data)

    # --- the module tree -------------------------------------------------------------
    def named_modules(self, prefix: str = "") -> list[tuple[str, ModuleBase]]:
        """Return ``(path, module)`` for this module and every submodule, each once.

        Paths are attribute paths (``"agent.llm"``, ``"steps[0]"``); this module is ``""``.
        """
        seen: set[int] = set()
        out: list[tuple[str, ModuleBase]] = []

        def walk(path: str, module: ModuleBase) -> None:
            if id(module) in seen:
                return
            seen.add(id(module))
            out.append((path, module))
            for sub_path, sub in _children(module):
                walk(f"{path}.{sub_path}" if path and not sub_path.startswith("[") else path + sub_path, sub)

        walk(prefix, self)
        return out

    def submodules(self) -> list[ModuleBase]:
        """Return the direct submodules, in attribute order, each once."""
        seen: set[int] = set()
        out: list[ModuleBase] = []
        for _, m in _children(self):
            if id(m) not in seen:
                seen.add(id(m))
                out.append(m)
        return out

    def start(self) -> ModuleBase:
        """Start every module of the tree once (deploy servers, load resources); return self."""
        for _, module in reversed(self.named_modules()):
            if not module._started:
                module._start()
                object.__setattr__(module, "_started", True)
        return self

    def _start(self) -> None:
        """Override to deploy or load what the module needs; called once by ``start()``."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


def _children(module: ModuleBase) -> Iterator[tuple[str, ModuleBase]]:
    for key, value in vars(module).items():
        if key.startswith("__"):
            continue
        if isinstance(value, ModuleBase):
            yield key, value
        elif isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                if isinstance(item, ModuleBase):
                    yield f"{key}[{i}]", item
        elif isinstance(value, dict):
            for k, item in value.items():
                if isinstance(item, ModuleBase):
                    yield f"{key}[{k!r}]", item
