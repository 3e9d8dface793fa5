"""Checking a model's tool arguments against the tool's schema before the tool runs.

Only the JSON-schema subset that ``_schema`` generates is understood: ``type`` (one or a
list), ``enum``, ``items``, ``additionalProperties``, ``properties`` and ``required``.
Nothing is coerced: a wrong type goes back to the model, which can correct it.
"""
from __future__ import annotations

import json
from typing import Any

from ._schema import ToolSpec

__all__ = ["ToolArgumentError", "parse_arguments", "validate_arguments"]

_JSON_TYPES = {"string": "a string", "integer": "an integer", "number": "a number",
               "boolean": "a boolean", "array": "an array", "object": "an object",
               "null": "null"}


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


def _is(value: Any, kind: str) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "array":
        return isinstance(value, list)
    if kind == "object":
        return isinstance(value, dict)
    if kind == "null":
        return value is None
    return True


def _in_enum(value: Any, members: list[Any]) -> bool:
    # `True == 1` in Python; a JSON boolean must not match an integer member.
    return any(value == m and isinstance(value, bool) == isinstance(m, bool) for m in members)


def _check(value: Any, schema: dict[str, Any], path: str, problems: list[str]) -> None:
    kind = schema.get("type")
    kinds = [kind] if isinstance(kind, str) else list(kind or [])
    if kinds and not any(_is(value, k) for k in kinds):
        wanted = " or ".join(_JSON_TYPES.get(k, k) for k in kinds)
        problems.append(f"'{path}' must be {wanted}, got {json.dumps(value)}")
        return
    if "enum" in schema and not _in_enum(value, schema["enum"]):
        allowed = ", ".join(json.dumps(e) for e in schema["enum"])
        problems.append(f"'{path}' must be one of {allowed}, got {json.dumps(value)}")
        return
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            _check(item, schema["items"], f"{path}[{i}]", problems)
    if isinstance(value, dict) and isinstance(schema.get("additionalProperties"), dict):
        for key, item in value.items():
            _check(item, schema["additionalProperties"], f"{path}.{key}", problems)


def validate_arguments(spec: ToolSpec, arguments: dict[str, Any]) -> dict[str, Any]:
    """Return the keyword arguments to call the tool with (Enum values made members).

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
    for key, value in arguments.items():
        if key in properties:
            _check(value, properties[key], key, problems)
    if problems:
        raise ToolArgumentError("; ".join(problems))
    kwargs = dict(arguments)
    for key, enum_cls in spec.enums.items():
        if kwargs.get(key) is not None:
            kwargs[key] = enum_cls(kwargs[key])
    return kwargs
