"""Checking a model's tool arguments with the tool's pydantic model before the tool runs.

Validation is strict, as JSON: nothing is coerced (``"3"`` is not an integer), so a wrong
type goes back to the model, which can correct it. JSON's own spellings are accepted where
a Python type has no JSON form: an ISO string for a date, an Enum's value for the Enum,
an object for a dataclass, TypedDict or pydantic model.
"""
from __future__ import annotations

import json
from typing import Any

import pydantic

from ._schema import ToolSpec

__all__ = ["ToolArgumentError", "parse_arguments", "validate_arguments"]

_WANTED = {"string_type": "a string", "int_type": "an integer", "int_from_float": "an integer",
           "int_parsing": "an integer", "float_type": "a number", "float_parsing": "a number",
           "bool_type": "a boolean", "bool_parsing": "a boolean", "list_type": "an array",
           "dict_type": "an object", "model_type": "an object", "dataclass_type": "an object",
           "model_attributes_type": "an object", "none_required": "null"}


class ToolArgumentError(ValueError):
    """The model's arguments do not fit the tool's schema; the message lists every problem."""


def parse_arguments(raw: Any) -> dict[str, Any]:
    """Return the arguments object of a tool call, parsing a JSON string if needed.

    Raises ``ToolArgumentError`` for malformed JSON or a JSON value that is not an object.
    """
    if raw is None or raw == "":
        return {}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as e:
            raise ToolArgumentError(f"the arguments are not valid JSON ({e.msg} at position "
                                    f"{e.pos}): {_clip(raw)}") from None
    if not isinstance(raw, dict):
        raise ToolArgumentError(f"the arguments must be a JSON object, got {_clip(json.dumps(raw))}")
    return raw


def _clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _schema_at(schema: dict[str, Any], loc: tuple[int | str, ...]) -> dict[str, Any]:
    """The schema of the value at ``loc`` (best effort: ``{}`` where it cannot be followed)."""
    node: Any = schema
    for part in loc:
        if not isinstance(node, dict):
            return {}
        if isinstance(part, int):
            node = node.get("items", {})
        elif part in node.get("properties", {}):
            node = node["properties"][part]
        elif isinstance(node.get("additionalProperties"), dict):
            node = node["additionalProperties"]
        else:
            return {}
    return node if isinstance(node, dict) else {}


def _json(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def _problem(error: Any, spec: ToolSpec) -> str:
    # A union's error locations include the branch tried (e.g. 'int'): keep the data path.
    loc = tuple(p for p in error["loc"] if isinstance(p, int) or not _is_branch_tag(p, error))
    path, got = _path(loc), _json(error.get("input"))
    kind = error["type"]
    enum = _schema_at(spec.parameters, loc).get("enum")
    if kind in ("literal_error", "enum") or (enum is not None and kind in _WANTED):
        allowed = ", ".join(_json(e) for e in enum or [])
        return f"'{path}' must be one of {allowed}, got {got}"
    if kind in _WANTED:
        return f"'{path}' must be {_WANTED[kind]}, got {got}"
    if kind == "missing":
        return f"'{path}' is missing"
    if kind == "extra_forbidden":
        return f"'{path}' is not a known field"
    return f"'{path}': {error['msg']}, got {got}"


def _is_branch_tag(part: str, error: Any) -> bool:
    # pydantic names the branch of a union it tried ('int', 'list[str]', 'function-after[...]').
    return any(ch in part for ch in "[]") or part in ("int", "str", "float", "bool", "none", "list", "dict")


def validate_arguments(spec: ToolSpec, arguments: dict[str, Any]) -> dict[str, Any]:
    """Return the keyword arguments to call the tool with: each given argument validated and
    converted to its annotated type (Enum members, dates, dataclasses, models).

    Raises ``ToolArgumentError`` listing unknown, missing and ill-typed arguments.
    """
    params = spec.parameters
    properties: dict[str, Any] = params["properties"]
    problems: list[str] = []
    unknown = [k for k in arguments if k not in properties]
    if unknown:
        problems.append(f"unknown argument{'s' if len(unknown) > 1 else ''} "
                        f"{', '.join(repr(k) for k in unknown)} (parameters: "
                        f"{', '.join(properties) or 'none'})")
    missing = [k for k in params.get("required", []) if k not in arguments]
    if missing:
        problems.append(f"missing required argument{'s' if len(missing) > 1 else ''} "
                        f"{', '.join(repr(k) for k in missing)}")
    given = {k: v for k, v in arguments.items() if k in properties}
    try:
        validated = spec.model.model_validate_json(json.dumps(given))
    except pydantic.ValidationError as e:
        wanted: dict[str, list[str]] = {}   # path -> the types a union's branches wanted
        for error in e.errors(include_url=False):
            top = error["loc"][0] if error["loc"] else None
            if error["type"] == "missing" and len(error["loc"]) == 1 and top in missing:
                continue   # listed above, once
            text = _problem(error, spec)
            head, sep, got = text.partition(" must be ")
            if sep and " one of " not in text and head in wanted:
                wanted[head].append(got.rsplit(", got ", 1)[0])
                index = next(i for i, t in enumerate(problems) if t.startswith(head + " must be "))
                problems[index] = f"{head} must be {' or '.join(wanted[head])}, got {got.rsplit(', got ', 1)[1]}"
                continue
            if sep and " one of " not in text:
                wanted[head] = [got.rsplit(", got ", 1)[0]]
            if text not in problems:
                problems.append(text)
        validated = None
    except (TypeError, ValueError) as e:   # json.dumps of a non-JSON value (never from a model)
        problems.append(f"the arguments are not JSON: {e}")
        validated = None
    if problems or validated is None:
        raise ToolArgumentError("; ".join(problems))
    return {k: getattr(validated, k) for k in given}
