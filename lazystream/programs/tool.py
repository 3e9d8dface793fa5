"""``Tool``: a Python function a program calls as a step, seen by status messages."""
from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from typing import Any

from ..module import ModuleBase

__all__ = ["Tool"]

_JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean",
               list: "array", dict: "object"}


class Tool(ModuleBase):
    """Wrap ``func`` as a tool: ``Tool(fn, name=None, desc=None)``; call it with keywords.

    ``name`` defaults to the function's name, ``desc`` to its docstring; ``args`` maps each
    parameter to a small JSON schema (its type, when annotated). Inside ``streamify`` its
    calls fire the ``tool_start`` / ``tool_end`` status hooks.
    """

    def __init__(self, func: Callable[..., Any], name: str | None = None,
                 desc: str | None = None, args: dict[str, Any] | None = None) -> None:
        if not callable(func):
            raise TypeError(f"Tool: func must be callable, got {func!r}")
        name = name or getattr(func, "__name__", None) or type(func).__name__
        if not isinstance(name, str) or not name:
            raise ValueError(f"Tool: name must be a non-empty string, got {name!r}")
        super().__init__(name=name)
        self.func = func
        self.desc = desc if desc is not None else (inspect.getdoc(func) or "")
        self.args = args if args is not None else _args_schema(func)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Return ``func(*args, **kwargs)``."""
        return self.func(*args, **kwargs)

    def __repr__(self) -> str:
        return f"Tool(name={self.name!r}, desc={self.desc!r}, args={self.args!r})"


def _args_schema(func: Callable[..., Any]) -> dict[str, Any]:
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):  # builtins without a signature
        return {}
    try:
        hints = typing.get_type_hints(func)
    except Exception:  # noqa: BLE001 - unresolvable string annotations: schema without types
        hints = {}
    schema: dict[str, Any] = {}
    for p in params.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        json_type = _JSON_TYPES.get(hints.get(p.name, p.annotation))
        schema[p.name] = {"type": json_type} if json_type else {}
    return schema
