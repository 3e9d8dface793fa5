"""A function's signature and docstring → its OpenAI tool schema.

Types come from the annotations; a parameter without one may give its type in the
docstring (``x (int): ...`` or ``:type x: int``), which is parsed with ``ast`` and never
evaluated. Supported: ``str``, ``int``, ``float``, ``bool``, ``list[...]``, ``dict``
(``dict[str, ...]``), ``Optional[...]`` / ``X | None``, ``Literal[...]`` and ``Enum``
subclasses. Anything else is a ``ToolSchemaError`` that names the function and parameter.
"""
from __future__ import annotations

import ast
import enum
import inspect
import json
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._docstring import parse_docstring

__all__ = ["ToolSchemaError", "ToolSpec", "build_tool_spec"]

_SUPPORTED = ("str, int, float, bool, list[...], dict, Optional[...], Literal[...] "
              "or an Enum subclass")
_PRIMITIVES = {str: "string", int: "integer", float: "number", bool: "boolean"}
_DOC_NAMES = {"str": str, "string": str, "int": int, "integer": int, "float": float,
              "number": float, "bool": bool, "boolean": bool, "list": list, "List": list,
              "dict": dict, "Dict": dict, "None": type(None), "NoneType": type(None)}
_DOC_GENERICS = {"list": list, "List": list, "dict": dict, "Dict": dict,
                 "Optional": typing.Optional, "Union": typing.Union, "Literal": typing.Literal}


class ToolSchemaError(ValueError):
    """A function cannot be made into a tool: the message names the function, parameter and fix."""


@dataclass(frozen=True)
class ToolSpec:
    """A tool's name, OpenAI schema and, per parameter, the Enum class to convert values to."""

    name: str
    schema: dict[str, Any]
    enums: dict[str, type[enum.Enum]]

    @property
    def parameters(self) -> dict[str, Any]:
        """The JSON schema of the arguments object."""
        return self.schema["function"]["parameters"]


class _Unsupported(Exception):
    """Raised inside type conversion; turned into a ``ToolSchemaError`` with context."""


def _literal_schema(values: tuple[Any, ...]) -> dict[str, Any]:
    if not values:
        raise _Unsupported("an empty Literal[]")
    kinds = set()
    for v in values:
        if isinstance(v, enum.Enum):
            v = v.value
        kind = _PRIMITIVES.get(type(v))
        if kind is None:
            raise _Unsupported(f"Literal value {v!r} (only str, int, float and bool values)")
        kinds.add(kind)
    out: dict[str, Any] = {"type": kinds.pop() if len(kinds) == 1 else sorted(kinds)}
    out["enum"] = [v.value if isinstance(v, enum.Enum) else v for v in values]
    return out


def _enum_schema(cls: type[enum.Enum]) -> dict[str, Any]:
    return _literal_schema(tuple(m.value for m in cls))


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    out = dict(schema)
    kind = out.get("type")
    kinds = [kind] if isinstance(kind, str) else list(kind or [])
    if "null" not in kinds:
        kinds.append("null")
    out["type"] = kinds
    if "enum" in out and None not in out["enum"]:
        out["enum"] = [*out["enum"], None]
    return out


def _type_schema(tp: Any) -> tuple[dict[str, Any], type[enum.Enum] | None]:
    """Return (JSON schema, Enum class to convert to or None) for annotation ``tp``."""
    if tp in _PRIMITIVES:
        return {"type": _PRIMITIVES[tp]}, None
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return _enum_schema(tp), tp
    if tp is list:
        return {"type": "array"}, None
    if tp is dict:
        return {"type": "object"}, None
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Literal:
        return _literal_schema(args), None
    if origin is list:
        if len(args) != 1:
            raise _Unsupported(f"{_show(tp)} (list takes one item type)")
        item, _ = _type_schema(args[0])
        return {"type": "array", "items": item}, None
    if origin is dict:
        if not args:
            return {"type": "object"}, None
        if args[0] is not str:
            raise _Unsupported(f"{_show(tp)} (JSON object keys are strings: use dict[str, ...])")
        value, _ = _type_schema(args[1])
        return {"type": "object", "additionalProperties": value}, None
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1 and len(args) == 2:
            inner, enum_cls = _type_schema(rest[0])
            return _nullable(inner), enum_cls
        raise _Unsupported(f"{_show(tp)} (a Union other than Optional[X])")
    raise _Unsupported(_show(tp))


def _show(tp: Any) -> str:
    if isinstance(tp, type) and not typing.get_args(tp):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _parse_doc_type(text: str) -> Any:
    """Turn a docstring type such as ``Literal['a', 'b']`` or ``list[int]`` into a type.

    The text is parsed with ``ast``; only names from a fixed table and constants are
    accepted, so nothing in it is ever executed.
    """
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        raise _Unsupported(f"{text!r} (cannot parse the docstring type)") from None

    def build(node: ast.AST) -> Any:
        if isinstance(node, ast.Name) and node.id in _DOC_NAMES:
            return _DOC_NAMES[node.id]
        if isinstance(node, ast.Constant) and node.value is None:
            return type(None)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            return typing.Union[build(node.left), build(node.right)]
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
            generic = _DOC_GENERICS.get(node.value.id)
            items = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
            if generic is typing.Literal:
                values = []
                for item in items:
                    if not isinstance(item, ast.Constant):
                        raise _Unsupported(f"{text!r} (Literal values must be constants)")
                    values.append(item.value)
                return typing.Literal[tuple(values)]
            if generic is not None:
                args = tuple(build(i) for i in items)
                if generic is typing.Optional:
                    return typing.Optional[args[0]]
                return generic[args if len(args) > 1 else args[0]]
        raise _Unsupported(f"{text!r} in the docstring")

    return build(tree)


def _annotations(fn: Callable[..., Any]) -> dict[str, Any]:
    target = fn if inspect.isroutine(fn) else getattr(fn, "__call__", fn)
    try:
        return typing.get_type_hints(target)
    except Exception:  # noqa: BLE001 - unresolvable string annotations fall back to parsing
        return {}


def build_tool_spec(fn: Callable[..., Any], name: str | None = None, *,
                    require_docs: bool = True) -> ToolSpec:
    """Return the OpenAI tool schema of ``fn`` from its signature and docstring.

    Raises ``ToolSchemaError`` naming the function and parameter for a missing docstring,
    an undescribed parameter, a missing or unsupported type, ``*args``/``**kwargs`` or a
    default that is not JSON. With ``require_docs=False`` (LazyLLM's ``fc_register``) a
    missing summary is an empty description and an undescribed parameter has none.
    """
    if not callable(fn):
        raise ToolSchemaError(f"tool {fn!r} is not callable: register a function")
    name = name or getattr(fn, "__name__", None)
    if not name or not isinstance(name, str) or not name.isidentifier():
        raise ToolSchemaError(f"tool {fn!r} has no usable name: pass name='my_tool'")
    doc = inspect.getdoc(fn) if inspect.isfunction(fn) or inspect.ismethod(fn) else fn.__doc__
    parsed = parse_docstring(doc)
    if require_docs and not parsed.summary and not parsed.descriptions:
        raise ToolSchemaError(
            f"tool '{name}' has no docstring: add one with a one-line summary and an "
            f"'Args:' entry per parameter, e.g. '\"\"\"Get the weather.\\n\\nArgs:\\n    "
            f"location (str): The city.\"\"\"'")
    if require_docs and not parsed.summary:
        raise ToolSchemaError(f"tool '{name}' has no summary line in its docstring: the first "
                              f"line says what the tool does")
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError) as e:
        raise ToolSchemaError(f"tool '{name}': cannot read its signature ({e})") from None
    hints = _annotations(fn)
    properties: dict[str, Any] = {}
    required: list[str] = []
    enums: dict[str, type[enum.Enum]] = {}
    for pname, param in sig.parameters.items():
        where = f"tool '{name}' parameter '{pname}'"
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ToolSchemaError(f"{where}: *args/**kwargs cannot be described to a model; "
                                  f"list each parameter explicitly")
        if param.kind is param.POSITIONAL_ONLY:
            raise ToolSchemaError(f"{where}: positional-only parameters are not supported; "
                                  f"tools are called with keyword arguments")
        description = parsed.descriptions.get(pname, "").strip()
        if require_docs and not description:
            raise ToolSchemaError(f"{where} has no description: add '{pname} (type): ...' "
                                  f"under 'Args:' (or ':param {pname}: ...') in the docstring")
        if pname in hints:
            tp = hints[pname]
        elif param.annotation is not inspect.Parameter.empty:
            tp = param.annotation
        elif pname in parsed.types and parsed.types[pname]:
            tp = parsed.types[pname]
        else:
            raise ToolSchemaError(f"{where} has no type: annotate it ({pname}: str) or give "
                                  f"the type in the docstring ('{pname} (str): ...')")
        try:
            if isinstance(tp, str):
                tp = _parse_doc_type(tp)
            schema, enum_cls = _type_schema(tp)
        except _Unsupported as e:
            raise ToolSchemaError(f"{where} has unsupported type {e}; supported: "
                                  f"{_SUPPORTED}") from None
        described = {"description": description} if description else {}
        prop: dict[str, Any] = {**schema, **described}
        if param.default is inspect.Parameter.empty:
            required.append(pname)
        else:
            default = param.default
            if isinstance(default, enum.Enum):
                default = default.value
            if default is None and "null" not in (prop["type"] if isinstance(prop["type"], list)
                                                  else [prop["type"]]):
                # `x: int = None` is an implicit Optional.
                prop = {**_nullable(schema), **described}
            try:
                json.dumps(default)
            except (TypeError, ValueError):
                raise ToolSchemaError(f"{where}: default {default!r} is not JSON; use a str, "
                                      f"number, bool, None, list or dict default") from None
            prop["default"] = default
        if enum_cls is not None:
            enums[pname] = enum_cls
        properties[pname] = prop
    parameters = {"type": "object", "properties": properties, "required": required}
    schema = {"type": "function",
              "function": {"name": name, "description": parsed.summary or "",
                           "parameters": parameters}}
    return ToolSpec(name=name, schema=schema, enums=enums)
