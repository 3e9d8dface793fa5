"""A function's signature and docstring → its OpenAI tool schema, and the pydantic model
that validates a model's arguments for it.

Types come from the annotations; a parameter without one may give its type in the
docstring (``x (int): ...``, ``x : int`` or ``:type x: int``), which is parsed with ``ast``
and never evaluated. Any type pydantic can describe works: ``str``, ``int``, ``float``,
``bool``, lists, dicts, ``Optional``/``Union``, ``Literal``, ``Enum``, ``TypedDict``,
dataclasses, pydantic models, dates and times. A type pydantic cannot describe (an
arbitrary class, a callable) is a ``ToolSchemaError`` that names the function and parameter.
"""
from __future__ import annotations

import ast
import copy
import inspect
import json
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pydantic
from pydantic_core import PydanticSerializationError

from ._docstring import parse_docstring

__all__ = ["ToolSchemaError", "ToolSpec", "build_tool_spec"]

_SUPPORTED = ("str, int, float, bool, list[...], dict[str, ...], Optional/Union, Literal, an Enum, "
              "a TypedDict, a dataclass, a pydantic model, date/datetime/time")
_DOC_NAMES: dict[str, Any] = {
    "str": str, "string": str, "int": int, "integer": int, "float": float, "number": float,
    "bool": bool, "boolean": bool, "list": list, "List": list, "dict": dict, "Dict": dict,
    "None": type(None), "NoneType": type(None)}
_DOC_GENERICS: dict[str, Any] = {
    "list": list, "List": list, "dict": dict, "Dict": dict, "Optional": typing.Optional,
    "Union": typing.Union, "Literal": typing.Literal}
_JSON_TYPE_OF = {str: "string", bool: "boolean", int: "integer", float: "number", type(None): "null"}


class ToolSchemaError(ValueError):
    """A function cannot be made into a tool: the message names the function, parameter and fix."""


@dataclass(frozen=True)
class ToolSpec:
    """A tool's name, its OpenAI schema and the pydantic model that validates its arguments."""

    name: str
    schema: dict[str, Any]
    model: type[pydantic.BaseModel]

    @property
    def parameters(self) -> dict[str, Any]:
        """The JSON schema of the arguments object."""
        return self.schema["function"]["parameters"]


class _Unsupported(Exception):
    """Raised inside type conversion; turned into a ``ToolSchemaError`` with context."""


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
            return typing.Union[build(node.left), build(node.right)]  # noqa: UP007 - built from parsed text
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
                    return typing.Optional[args[0]]  # noqa: UP045 - built from parsed text
                return generic[args if len(args) > 1 else args[0]]
        raise _Unsupported(f"{text!r} in the docstring")

    return build(tree)


def _annotations(fn: Callable[..., Any]) -> dict[str, Any]:
    target = fn if inspect.isroutine(fn) else type(fn).__call__
    try:
        return typing.get_type_hints(target, include_extras=True)
    except Exception:  # noqa: BLE001 - unresolvable string annotations fall back to the docstring
        return {}


def _show(tp: Any) -> str:
    if isinstance(tp, type) and not typing.get_args(tp):
        return tp.__name__
    return str(tp).replace("typing.", "").replace("collections.abc.", "")


# --- pydantic's JSON schema → the plain form OpenAI models read best --------------------

def _inline_refs(node: Any, defs: dict[str, Any], seen: tuple[str, ...] = ()) -> Any:
    """Replace each ``$ref`` by its definition; a recursive one stays a ``$ref``."""
    if isinstance(node, list):
        return [_inline_refs(n, defs, seen) for n in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        name = ref.removeprefix("#/$defs/")
        if name not in seen and name in defs:
            rest = {k: v for k, v in node.items() if k != "$ref"}
            return _inline_refs({**copy.deepcopy(defs[name]), **rest}, defs, (*seen, name))
    return {k: _inline_refs(v, defs, seen) for k, v in node.items()}


def _refers(node: Any) -> bool:
    if isinstance(node, dict):
        return "$ref" in node or any(_refers(v) for v in node.values())
    return isinstance(node, list) and any(_refers(v) for v in node)


def _plain(node: Any) -> Any:
    """Drop pydantic's titles; write ``anyOf`` of plain types as a list of types."""
    if isinstance(node, list):
        return [_plain(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _plain(v) for k, v in node.items()
           if not (k == "title" and isinstance(v, str)) and not (k == "additionalProperties" and v is True)}
    if "properties" in node:   # a property may itself be named "title"
        out["properties"] = {k: _plain(v) for k, v in node["properties"].items()}
    if "enum" in out and "type" not in out:
        kinds = []
        for value in out["enum"]:
            kind = _JSON_TYPE_OF.get(type(value))
            if kind is not None and kind not in kinds:
                kinds.append(kind)
        if kinds:
            out["type"] = kinds[0] if len(kinds) == 1 else kinds
    branches = out.get("anyOf")
    if isinstance(branches, list) and (merged := _merge_types(branches)) is not None:
        del out["anyOf"]
        out = {**merged, **out}
    return out


def _merge_types(branches: list[Any]) -> dict[str, Any] | None:
    """``[{type: A, ...}, {type: null}]`` → ``{type: [A, null], ...}`` when nothing conflicts."""
    kinds: list[str] = []
    merged: dict[str, Any] = {}
    enum: list[Any] | None = None
    for branch in branches:
        if not isinstance(branch, dict) or not isinstance(branch.get("type"), (str, list)):
            return None
        for kind in [branch["type"]] if isinstance(branch["type"], str) else branch["type"]:
            if kind not in kinds:
                kinds.append(kind)
        for key, value in branch.items():
            if key == "type":
                continue
            if key == "enum":
                enum = [*(enum or []), *value]
            elif key in merged and merged[key] != value:
                return None
            else:
                merged[key] = value
    if enum is not None:
        if any("enum" not in b and b.get("type") != "null" for b in branches):
            return None   # an open type next to an enum: the enum would wrongly narrow it
        if "null" in kinds and None not in enum:
            enum.append(None)
        merged["enum"] = enum
    return {"type": kinds[0] if len(kinds) == 1 else kinds, **merged}


def build_tool_spec(fn: Callable[..., Any], name: str | None = None, *,
                    require_docs: bool = True) -> ToolSpec:
    """Return the OpenAI tool schema of ``fn`` from its signature and docstring.

    With ``require_docs`` (the default) the docstring must give a summary and describe
    every parameter; without it a missing summary is an empty description and an
    undescribed parameter has no ``description`` (types are still required).

    Raises ``ToolSchemaError`` naming the function and parameter for a missing docstring,
    an undescribed parameter, a missing or unsupported type, ``*args``/``**kwargs`` or a
    default that is not JSON.
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
    fields: dict[str, Any] = {}
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
        elif parsed.types.get(pname):
            tp = parsed.types[pname]
        else:
            raise ToolSchemaError(f"{where} has no type: annotate it ({pname}: str) or give "
                                  f"the type in the docstring ('{pname} (str): ...')")
        try:
            if isinstance(tp, str):
                tp = _parse_doc_type(tp)
        except _Unsupported as e:
            raise ToolSchemaError(f"{where} has unsupported type {e}; supported: {_SUPPORTED}") from None
        default = param.default
        if default is None:
            tp = typing.Optional[tp]  # noqa: UP045 - `x: int = None` is an implicit Optional
        if default is not inspect.Parameter.empty:
            try:
                json.dumps(pydantic.TypeAdapter(Any).dump_python(default, mode="json"))
            except (TypeError, ValueError, PydanticSerializationError):
                raise ToolSchemaError(f"{where}: default {default!r} is not JSON; use a str, "
                                      f"number, bool, None, list or dict default") from None
        field = pydantic.Field(... if default is inspect.Parameter.empty else default,
                               description=description or None)
        try:
            # One type at a time, so that the error names the parameter it is about.
            pydantic.TypeAdapter(tp).json_schema()
        except (pydantic.PydanticSchemaGenerationError, pydantic.PydanticInvalidForJsonSchema,
                pydantic.PydanticUserError, TypeError) as e:
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise ToolSchemaError(f"{where} has unsupported type {_show(tp)} (pydantic: {reason}); "
                                  f"supported: {_SUPPORTED}") from None
        fields[pname] = (tp, field)
    model = pydantic.create_model(  # type: ignore[call-overload]
        f"{name}_arguments", __config__=pydantic.ConfigDict(extra="forbid", strict=True,
                                                          arbitrary_types_allowed=False), **fields)
    raw = model.model_json_schema()
    defs = raw.pop("$defs", {})
    inlined = _inline_refs(raw, defs)
    parameters = _plain({k: v for k, v in inlined.items() if k != "additionalProperties"})
    if _refers(parameters):   # a recursive type: its definitions stay alongside
        parameters["$defs"] = _plain(defs)
    parameters.setdefault("properties", {})
    parameters["required"] = [p for p in parameters.get("required", [])]
    parameters = {"type": "object", "properties": parameters.pop("properties"),
                  "required": parameters.pop("required"),
                  **{k: v for k, v in parameters.items() if k != "type"}}
    schema = {"type": "function",
              "function": {"name": name, "description": parsed.summary, "parameters": parameters}}
    return ToolSpec(name=name, schema=schema, model=model)
