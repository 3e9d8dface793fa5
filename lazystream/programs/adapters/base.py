"""What every adapter provides, and the value rendering and coercion they share.

An adapter turns (signature, inputs) into chat messages, turns the LM's reply back into
output fields, and — for streaming — makes a *field scanner*: an incremental parser that
is fed the reply token by token and releases the decoded text of one output field.

A scanner's contract (both adapters):

* ``feed(text)`` and ``finish()`` return ``[(pos, chunk, is_last), ...]``. ``pos`` is the
  offset in the reply where the released text ends (it orders the chunks of several fields
  released by one token); ``is_last`` is true exactly once, on the field's last chunk.
* The concatenated chunks equal the value ``parse`` returns for that field (for a ``str``
  field): the ChatAdapter strips surrounding whitespace in both, the JSONAdapter yields the
  decoded JSON string in both.
"""
from __future__ import annotations

import ast
import dataclasses
import json
import typing
from typing import Any, ClassVar, Literal, Protocol, Union

from ..prediction import Prediction
from ..signature import Signature, SignatureField, type_name

__all__ = ["Adapter", "AdapterParseError", "FieldScanner", "inputs_of"]


class AdapterParseError(ValueError):
    """The LM's reply does not hold the output fields the signature asks for."""

    def __init__(self, message: str, *, adapter_name: str, lm_response: str,
                 parsed_result: dict[str, Any] | None = None) -> None:
        super().__init__(f"{message}\n--- LM reply ---\n{lm_response}\n--- end of reply ---")
        self.adapter_name = adapter_name
        self.lm_response = lm_response
        self.parsed_result = parsed_result or {}


class FieldScanner(Protocol):
    """Incremental parser of one output field; see the module docstring."""

    def feed(self, text: str) -> list[tuple[int, str, bool]]: ...

    def finish(self) -> list[tuple[int, str, bool]]: ...


class Adapter:
    """Base class of adapters. Subclasses implement ``format``, ``parse`` and ``scanner``."""

    name = "base"
    _by_name: ClassVar[dict[str, type[Adapter]]] = {}

    def __init__(self, callbacks: list[Any] | None = None) -> None:
        self.callbacks = list(callbacks or ())  # BaseCallback handlers of format/parse

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # A user's subclass that keeps its base's wire format (no own ``name``) streams as
        # the base does; it must not replace the base in the table.
        if "name" in cls.__dict__:
            Adapter._by_name[cls.name] = cls

    @classmethod
    def by_name(cls, name: str) -> Adapter:
        """Return a new adapter of the class registered as ``name`` (``"chat"``, ``"json"``).

        Raises ``ValueError`` for an unknown name.
        """
        try:
            return Adapter._by_name[name]()
        except KeyError:
            raise ValueError(f"no adapter named {name!r}; known: "
                             f"{', '.join(sorted(Adapter._by_name))}") from None

    def format(self, signature: type[Signature], demos: Any,
               inputs: dict[str, Any] | None = None) -> list[dict[str, str]]:
        """Return the chat messages that ask the LM for the signature's output fields.

        Called ``format(signature, inputs)``, or as in DSPy ``format(signature, demos,
        inputs)``; lazystream has no few-shot demos, so ``demos`` must be empty.
        """
        raise NotImplementedError

    def parse(self, signature: type[Signature], text: str) -> dict[str, Any]:
        """Return the output fields read from ``text``; raises ``AdapterParseError``."""
        raise NotImplementedError

    def scanner(self, field: str) -> FieldScanner:
        """Return a fresh incremental parser releasing the text of output ``field``."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    # ---- shared pieces of the prompt -------------------------------------------------

    @staticmethod
    def _describe(fields: dict[str, SignatureField]) -> str:
        lines = []
        for i, f in enumerate(fields.values(), 1):
            lines.append(f"{i}. `{f.name}` ({type_name(f.annotation)}):"
                         + (f" {f.desc}" if f.desc else ""))
        return "\n".join(lines)

    def _field_description(self, signature: type[Signature]) -> str:
        return (f"Your input fields are:\n{self._describe(signature.input_fields)}\n"
                f"Your output fields are:\n{self._describe(signature.output_fields)}")

    @staticmethod
    def _objective(signature: type[Signature]) -> str:
        lines = signature.instructions.strip().splitlines() or [""]
        return "In adhering to this structure, your objective is: " + "".join(
            "\n        " + line for line in lines)

    @staticmethod
    def _type_note(field: SignatureField) -> str:
        ann = field.annotation
        if ann is str or ann is Any:
            return ""
        if ann is bool:
            return "must be True or False"
        if ann in (int, float):
            return f"must be a single {ann.__name__} value"
        if typing.get_origin(ann) is Literal:
            return ("must exactly match (no extra characters) one of: "
                    + "; ".join(str(a) for a in typing.get_args(ann)))
        try:
            from pydantic import TypeAdapter
            schema = TypeAdapter(ann).json_schema()
        except Exception:  # noqa: BLE001 - a type pydantic cannot describe: say its name
            return f"must be a valid Python {type_name(ann)}, written as JSON"
        return f"must adhere to the JSON schema: {json.dumps(schema, ensure_ascii=False)}"


def inputs_of(demos: Any, inputs: dict[str, Any] | None) -> dict[str, Any]:
    """The inputs of a ``format`` call in either form; refuses demos, which are not supported."""
    if inputs is None:
        return demos
    if demos:
        raise ValueError(f"Adapter.format: few-shot demos are not supported by lazystream, got "
                         f"{len(demos)} demo(s); pass demos=[]")
    return inputs


def render_value(value: Any) -> str:
    """Render an input value as prompt text: strings as-is, anything else as indented JSON.

    A ``Prediction`` is rendered as the JSON object of its fields.
    """
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False, default=_jsonable)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Prediction):
        return value.toDict()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    dump = getattr(value, "model_dump", None)  # pydantic models, without importing pydantic
    if callable(dump):
        return dump()
    return str(value)


def coerce_value(value: Any, field: SignatureField, adapter_name: str, reply: str) -> Any:
    """Return ``value`` (reply text or decoded JSON) converted to the field's type.

    Raises ``AdapterParseError`` naming the field, the value and the expected type.
    """
    ann = field.annotation
    if ann is Any or (ann is str and isinstance(value, str)):
        return value
    try:
        return _coerce(value, ann)
    except (ValueError, TypeError, SyntaxError) as e:
        raise AdapterParseError(
            f"{adapter_name}: field `{field.name}` should be a {type_name(ann)}, got {value!r} "
            f"({e})", adapter_name=adapter_name, lm_response=reply) from None


def _coerce(value: Any, ann: Any) -> Any:
    origin, args = typing.get_origin(ann), typing.get_args(ann)
    if ann is type(None):
        if value in (None, "None", "null", ""):
            return None
        raise ValueError("expected None")
    if origin is Union:
        errors = []
        for arg in args:
            try:
                return _coerce(value, arg)
            except (ValueError, TypeError, SyntaxError) as e:
                errors.append(str(e))
        raise ValueError("; ".join(errors))
    if origin is Literal:
        text = value.strip().strip("'\"") if isinstance(value, str) else value
        for option in args:
            if option == text or (isinstance(text, str) and str(option) == text):
                return option
        raise ValueError(f"not one of {list(args)}")
    if ann is str:
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if isinstance(value, str):
        value = _literal(value.strip(), ann)
    if ann is bool:
        if isinstance(value, bool):
            return value
        raise ValueError("expected True or False")
    if ann is int:
        if isinstance(value, bool):
            raise ValueError("expected an integer")
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, int):
            return value
        raise ValueError("expected an integer")
    if ann is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ValueError("expected a number")
    base = origin or ann
    if base in (list, tuple, set):
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"expected a {base.__name__}")
        items = [_coerce(v, args[0]) for v in value] if args and args[0] is not Any \
            and base is not tuple else list(value)
        return base(items)
    if base is dict:
        if not isinstance(value, dict):
            raise ValueError("expected a dict")
        return value
    validate = getattr(ann, "model_validate", None)   # a pydantic model, without importing it
    if isinstance(ann, type) and callable(validate):
        return validate(value)
    return value


def _literal(text: str, ann: Any) -> Any:
    if ann is bool:
        low = text.lower()
        if low in ("true", "false"):
            return low == "true"
    try:
        return json.loads(text)
    except ValueError:
        return ast.literal_eval(text)
