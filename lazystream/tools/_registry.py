"""The tool registry: ``fc_register(group)`` and the lookup agents use for ``tools=[...]``.

The registry is process-wide by design (tools are declared at import time, like the seed's
``@fc_register("tool")``); it is the one piece of global state in this package.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from ._schema import ToolSchemaError, ToolSpec, build_tool_spec

__all__ = ["RegisteredTool", "fc_register", "registered_tools", "resolve_tools"]

F = TypeVar("F", bound=Callable[..., Any])


class _Register(Protocol):
    def __call__(self, fn: F, func_name: str | None = None) -> F: ...

# A bare name is looked up in this group first (the seed's group), then in the others.
DEFAULT_GROUP = "tool"
_groups: dict[str, dict[str, RegisteredTool]] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class RegisteredTool:
    """A plain function with its schema — what ``fc_register`` stores and what an agent
    offers the model and runs for it. Not a module: ``lazystream.Tool`` (DSPy's ``Tool``) is
    the module a program calls as a step, seen by streamify's status messages."""

    name: str
    fn: Callable[..., Any]
    spec: ToolSpec
    group: str | None = None
    timeout: float | None = None

    @property
    def schema(self) -> dict[str, Any]:
        """The OpenAI tool schema (``{"type": "function", "function": {...}}``)."""
        return self.spec.schema


def _definition_site(fn: Callable[..., Any]) -> tuple[Any, ...] | None:
    code = getattr(fn, "__code__", None)
    if code is None:
        return None
    return (getattr(fn, "__qualname__", None), os.path.realpath(code.co_filename),
            code.co_firstlineno)


def _same_definition(a: Callable[..., Any], b: Callable[..., Any]) -> bool:
    # Running the defining file again (runpy, a reload, `python file.py` after an import)
    # re-creates the function at the same place, possibly under another module name: that
    # is a redefinition, not a second tool with the same name.
    site = _definition_site(a)
    return a is b or (site is not None and site == _definition_site(b))


def fc_register(group: str, *, name: str | None = None,
                timeout: float | None = None) -> _Register:
    """Return a decorator that registers a function as a tool in ``group``; the function
    itself is returned unchanged.

    The tool's schema comes from its signature and docstring (see ``docs/agents.md``); as in
    LazyLLM, a function without a docstring (or with undescribed parameters) is accepted,
    with empty descriptions. The decorator also takes a name, ``fc_register('tool')(fn,
    'another_name')``. ``timeout`` (seconds) bounds one call of the tool; the agent's
    ``tool_timeout`` applies otherwise. Raises ``ToolSchemaError`` naming the function and
    parameter for a missing or unsupported type, or a name already taken by another function
    in the group.
    """
    if not isinstance(group, str) or not group or "." in group:
        raise ToolSchemaError(f"fc_register: group must be a non-empty name without '.', "
                              f"got {group!r}; e.g. @fc_register('tool')")
    if timeout is not None and not (isinstance(timeout, (int, float)) and timeout > 0):
        raise ToolSchemaError(f"fc_register: timeout must be a positive number of seconds, "
                              f"got {timeout!r}")

    def register(fn: F, func_name: str | None = None) -> F:
        # LazyLLM's `fc_register('tool')(fn, 'another_name')` registers under a new name.
        if func_name is not None and not isinstance(func_name, str):
            raise ToolSchemaError(f"fc_register: the name to register under must be a str, "
                                  f"got {func_name!r}; e.g. fc_register('tool')(fn, 'my_tool')")
        spec = build_tool_spec(fn, func_name or name, require_docs=False)
        tool = RegisteredTool(spec.name, fn, spec, group, timeout)
        with _lock:
            members = _groups.setdefault(group, {})
            old = members.get(spec.name)
            if old is not None and not _same_definition(old.fn, fn):
                raise ToolSchemaError(
                    f"fc_register: group '{group}' already has a tool named '{spec.name}' "
                    f"({old.fn.__module__}.{old.fn.__qualname__}); rename the function or pass "
                    f"name='...' or register it in another group")
            members[spec.name] = tool
        return fn

    return register


def registered_tools(group: str | None = None) -> dict[str, RegisteredTool]:
    """Return ``{name: RegisteredTool}`` of one group, or of all groups keyed ``"group.name"``."""
    with _lock:
        if group is not None:
            return dict(_groups.get(group, {}))
        return {f"{g}.{n}": t for g, members in _groups.items() for n, t in members.items()}


def _lookup(name: str) -> RegisteredTool:
    with _lock:
        if "." in name:
            group, _, short = name.partition(".")
            tool = _groups.get(group, {}).get(short)
            if tool is not None:
                return tool
            known = ", ".join(sorted(_groups.get(group, {}))) or "none"
            raise ValueError(f"tool {name!r} is not registered: group '{group}' has {known}")
        if name in _groups.get(DEFAULT_GROUP, {}):
            return _groups[DEFAULT_GROUP][name]
        found = [members[name] for members in _groups.values() if name in members]
        if len(found) == 1:
            return found[0]
        if found:
            choices = ", ".join(f"'{t.group}.{name}'" for t in found)
            raise ValueError(f"tool name {name!r} is registered in several groups; "
                             f"write one of {choices}")
        known = ", ".join(sorted({n for members in _groups.values() for n in members})) or "none"
        raise ValueError(f"tool {name!r} is not registered (registered: {known}); decorate "
                         f"it with @fc_register('tool') or pass the function itself")


def resolve_tools(tools: Iterable[str | Callable[..., Any] | RegisteredTool]) -> list[RegisteredTool]:
    """Return the ``RegisteredTool``s for registered names, ``RegisteredTool``s and plain callables.

    A name is ``"group.name"`` or a bare ``"name"``, looked up in group ``"tool"`` first,
    then in the one other group that has it.

    Raises ``ValueError`` for an unknown or ambiguous name or two tools with one name, and
    ``ToolSchemaError`` for a callable that cannot be described.
    """
    if isinstance(tools, (str, bytes)) or not isinstance(tools, Iterable):
        raise TypeError(f"tools must be a list of tool names or functions, got {tools!r}")
    out: list[RegisteredTool] = []
    for item in tools:
        if isinstance(item, RegisteredTool):
            tool = item
        elif isinstance(item, str):
            tool = _lookup(item)
        elif callable(item):
            registered = [t for t in registered_tools().values() if t.fn is item]
            if registered:
                tool = registered[0]
            else:
                spec = build_tool_spec(item, require_docs=False)
                tool = RegisteredTool(spec.name, item, spec)
        else:
            raise TypeError(f"tools: {item!r} is neither a tool name nor a function")
        if any(t.name == tool.name for t in out):
            raise ValueError(f"tools: two tools are named {tool.name!r}; tool names must be "
                             f"unique within one agent")
        out.append(tool)
    if not out:
        raise ValueError("tools: the list is empty; give at least one tool name or function")
    return out
