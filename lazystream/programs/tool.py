"""``Tool``: a Python function a program calls as a step (DSPy's ``dspy.Tool``).

What DSPy infers, lazystream infers the same way:

* ``name`` — the function's ``__name__`` (a callable object: its class name);
* ``desc`` — the docstring (a callable object without a class docstring: its ``__call__``'s);
* ``args`` — each parameter's JSON schema from pydantic
  (``{"x": {"type": "integer"}, "y": {"type": "string", "default": "hello"}}``; a parameter
  without an annotation is ``{}``), ``arg_types`` its type, ``arg_desc`` descriptions
  given by the caller;
* a call checks each argument against its schema (``ValueError: Arg x is invalid: 'a' is
  not of type 'integer'``), refuses unknown arguments unless the function takes
  ``**kwargs``, and converts values to the annotated types (a dict to a pydantic model).

Inside ``streamify`` its calls fire the ``tool_start`` / ``tool_end`` status hooks.
"""
from __future__ import annotations

import asyncio
import inspect
import typing
from collections.abc import Callable
from typing import Any

from ..module import ModuleBase
from ._async import acall_module
from .callback import acall_with_callbacks, call_with_callbacks
from .settings import settings

__all__ = ["Tool"]


class Tool(ModuleBase):
    """Wrap ``func`` as a tool: ``Tool(func, name=None, desc=None, args=None, arg_types=None,
    arg_desc=None)``; call it with keywords (``await tool.acall(...)`` in async code).

    Values given are kept; the others are inferred from ``func`` (see the module docstring).
    ``str(tool)`` is the one-line description DSPy puts in prompts. Raises ``TypeError``
    for a ``func`` that is not callable.
    """

    def __init__(self, func: Callable[..., Any], name: str | None = None,
                 desc: str | None = None, args: dict[str, Any] | None = None,
                 arg_types: dict[str, Any] | None = None,
                 arg_desc: dict[str, str] | None = None) -> None:
        if not callable(func):
            raise TypeError(f"Tool: func must be callable, got {func!r}")
        target = func if inspect.isfunction(func) or inspect.ismethod(func) else \
            getattr(func, "__call__", func)  # noqa: B004 - a callable object: read its __call__
        inferred_name = getattr(func, "__name__", None) or type(func).__name__
        name = name or inferred_name
        if not isinstance(name, str) or not name:
            raise ValueError(f"Tool: name must be a non-empty string, got {name!r}")
        super().__init__(name=name)
        self.func = func
        self.desc = desc or getattr(func, "__doc__", None) or getattr(target, "__doc__", None) or ""
        schema, types, self.has_kwargs = _parse_parameters(target, arg_desc)
        self.args = args if args is not None else schema
        self.arg_types = arg_types if arg_types is not None else types
        self.arg_desc = arg_desc

    # ---- calling -------------------------------------------------------------------------
    def __call__(self, **kwargs: Any) -> Any:
        return call_with_callbacks(self, "tool", {"kwargs": kwargs},
                                   lambda: ModuleBase.__call__(self, **kwargs))

    async def acall(self, **kwargs: Any) -> Any:
        """Await the tool's result; a sync function runs as is, a coroutine is awaited."""
        return await acall_with_callbacks(self, "tool", {"kwargs": kwargs},
                                          lambda: acall_module(self, self.aforward, (), kwargs))

    def forward(self, **kwargs: Any) -> Any:
        """Return ``func(**kwargs)`` after checking and converting the arguments.

        An async ``func`` is run to completion only with
        ``configure(allow_tool_async_sync_conversion=True)``; otherwise it is a ``ValueError``
        (use ``acall``), as in DSPy.
        """
        result = self.func(**self._validate_and_parse_args(**kwargs))
        if inspect.iscoroutine(result):
            if not settings.allow_tool_async_sync_conversion:
                result.close()
                raise ValueError(
                    "You are calling `__call__` on an async tool, please use `acall` instead or "
                    "enable async-to-sync conversion with "
                    "`dspy.configure(allow_tool_async_sync_conversion=True)` or "
                    "`with dspy.context(allow_tool_async_sync_conversion=True):`.")
            return _run_coroutine(result)
        return result

    async def aforward(self, **kwargs: Any) -> Any:
        """The async ``forward``."""
        result = self.func(**self._validate_and_parse_args(**kwargs))
        return await result if inspect.iscoroutine(result) else result

    def _validate_and_parse_args(self, **kwargs: Any) -> dict[str, Any]:
        """Return the arguments converted to their types; ``ValueError`` names a bad one."""
        for key, value in kwargs.items():
            if key not in self.args:
                if self.has_kwargs:
                    continue
                raise ValueError(f"Arg {key} is not in the tool's args. Tool {self.name!r} "
                                 f"takes: {', '.join(self.args) or '(no arguments)'}")
            schema = self.args[key]
            if schema.get("type") not in (None, "Any"):
                instance = value.model_dump() if hasattr(value, "model_dump") else value
                problem = _schema_error(instance, schema)
                if problem is not None:
                    raise ValueError(f"Arg {key} is invalid: {problem}")
        parsed = {}
        for key, value in kwargs.items():
            annotation = self.arg_types.get(key, Any) if self.arg_types else Any
            if annotation is Any or annotation is inspect.Parameter.empty:
                parsed[key] = value
                continue
            from pydantic import TypeAdapter, ValidationError
            try:
                parsed[key] = TypeAdapter(annotation).validate_python(value)
            except ValidationError as e:
                raise ValueError(f"Arg {key} is invalid: {value!r} does not convert to "
                                 f"{annotation!r}: {e}") from None
        return parsed

    # ---- describing ----------------------------------------------------------------------
    def format_as_litellm_function_call(self, model_type: str = "chat") -> dict[str, Any]:
        """Return the OpenAI function-tool definition of this tool."""
        function = {"name": self.name, "description": self.desc,
                    "parameters": {"type": "object", "properties": self.args,
                                   "required": list(self.args)}}
        if model_type == "responses":
            return {"type": "function", **function}
        return {"type": "function", "function": function}

    def format(self) -> str:
        """Return ``str(self)``."""
        return str(self)

    def __repr__(self) -> str:
        return f"Tool(name={self.name}, desc={self.desc}, args={self.args})"

    def __str__(self) -> str:
        desc = f", whose description is <desc>{self.desc}</desc>.".replace("\n", "  ") \
            if self.desc else "."
        return f"{self.name}{desc} It takes arguments {self.args}."


def _run_coroutine(coroutine: Any) -> Any:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    coroutine.close()
    raise RuntimeError("Tool: cannot run an async tool synchronously inside a running event "
                       "loop; use `await tool.acall(...)`")


def _parse_parameters(func: Callable[..., Any], arg_desc: dict[str, str] | None
                      ) -> tuple[dict[str, Any], dict[str, Any], bool]:
    """Return ``(args schema, arg types, takes **kwargs)`` of ``func``."""
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):  # builtins without a signature
        return {}, {}, True
    try:
        hints = typing.get_type_hints(func)
    except Exception:  # noqa: BLE001 - unresolvable string annotations: schema without types
        hints = {}
    from pydantic import TypeAdapter

    args: dict[str, Any] = {}
    types: dict[str, Any] = {}
    for p in params.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        annotation = hints.get(p.name, Any)
        types[p.name] = annotation
        try:
            schema = _inline_refs(TypeAdapter(annotation).json_schema())
        except Exception:  # noqa: BLE001 - a type pydantic cannot describe: no constraint
            schema = {}
        if p.default is not inspect.Parameter.empty:
            schema["default"] = p.default
        if arg_desc and p.name in arg_desc:
            schema["description"] = arg_desc[p.name]
        args[p.name] = schema
    has_kwargs = any(p.kind == p.VAR_KEYWORD for p in params.values())
    return args, types, has_kwargs


def _inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """Replace ``{"$ref": "#/$defs/X"}`` with the definition itself; drop ``$defs``."""
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return walk(dict(defs[ref.split("/")[-1]]))
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(schema)


_JSON_TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool))
    or (isinstance(v, float) and v.is_integer()),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
    "null": lambda v: v is None,
}


def _schema_error(value: Any, schema: dict[str, Any]) -> str | None:
    """Return the first way ``value`` breaks the JSON ``schema`` (jsonschema's wording), or None."""
    expected = schema.get("type")
    if expected is not None:
        names = expected if isinstance(expected, list) else [expected]
        if not any(_JSON_TYPES.get(n, lambda v: True)(value) for n in names):
            shown = expected if isinstance(expected, list) else f"'{expected}'"
            return f"{value!r} is not of type {shown}"
    if "enum" in schema and value not in schema["enum"]:
        return f"{value!r} is not one of {schema['enum']!r}"
    if "anyOf" in schema and all(_schema_error(value, s) is not None for s in schema["anyOf"]):
        return f"{value!r} is not valid under any of the given schemas"
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            problem = _schema_error(item, schema["items"])
            if problem is not None:
                return problem
    if isinstance(value, dict):
        for required in schema.get("required", ()):
            if required not in value:
                return f"{required!r} is a required property"
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                problem = _schema_error(value[key], sub)
                if problem is not None:
                    return problem
    return None
