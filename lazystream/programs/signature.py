"""Signatures: the typed input and output fields of a predictor, and its instructions.

Two forms, as in DSPy::

    Signature("question -> answer")                  # string form, every field a str
    Signature("a: int, b: list[str] -> c: float")    # string form with types

    class QA(Signature):                             # class form
        \"\"\"Answer the question in one sentence.\"\"\"    # the docstring is the instructions
        question: str = InputField()
        answer: str = OutputField(desc="one sentence")

A signature is a class; its fields live in two ordered dicts, ``input_fields`` and
``output_fields``. They are separate on purpose: a name may be both an input and an output
(``"question, answer -> answer, score"``), which the DSPy seed relies on.

Types in the string form are read with ``ast`` against a fixed table of names, never
``eval``'d.
"""
from __future__ import annotations

import ast
import sys
import typing
from dataclasses import dataclass, replace
from typing import Any, Literal, Optional, Union

__all__ = ["MISSING", "InputField", "OutputField", "Signature", "SignatureField",
           "ensure_signature", "type_name"]


class _Missing:
    """The default of a field that has none (``InputField()`` without ``default=``)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


@dataclass(frozen=True)
class SignatureField:
    """One field of a signature: its name, direction, type, description and default."""

    name: str
    kind: str  # "input" or "output"
    annotation: Any = str
    desc: str = ""
    default: Any = MISSING


class _FieldSpec:
    """What ``InputField()`` / ``OutputField()`` return inside a class body."""

    __slots__ = ("default", "desc", "kind")

    def __init__(self, kind: str, desc: str | None, default: Any = MISSING) -> None:
        if desc is not None and not isinstance(desc, str):
            raise TypeError(f"{kind.capitalize()}Field: desc must be a string, got {desc!r}")
        self.kind = kind
        self.desc = desc or ""
        self.default = default

    def __repr__(self) -> str:
        default = "" if self.default is MISSING else f", default={self.default!r}"
        return f"{self.kind.capitalize()}Field(desc={self.desc!r}{default})"


def InputField(*, desc: str | None = None, default: Any = MISSING,
               **_ignored: Any) -> Any:
    """Declare an input field in a class-form signature. Returns a field marker.

    ``default=`` is the value a predictor uses when the call does not give this input.
    """
    return _FieldSpec("input", desc, default)


def OutputField(*, desc: str | None = None, **_ignored: Any) -> Any:
    """Declare an output field in a class-form signature. Returns a field marker."""
    return _FieldSpec("output", desc)


class _SignatureMeta(type):
    """Builds the field tables of a signature class; makes ``Signature("a -> b")`` work."""

    input_fields: dict[str, SignatureField]
    output_fields: dict[str, SignatureField]
    instructions: str

    def __new__(mcs, name: str, bases: tuple[type, ...], namespace: dict[str, Any],
                **kwargs: Any) -> _SignatureMeta:
        inputs: dict[str, SignatureField] = {}
        outputs: dict[str, SignatureField] = {}
        for base in reversed(bases):
            inputs.update(getattr(base, "input_fields", {}))
            outputs.update(getattr(base, "output_fields", {}))
        annotations = dict(namespace.get("__annotations__", {}))
        for attr in annotations:  # noqa: PLC0206 - the value is looked up in another mapping
            if not attr.startswith("_") and not isinstance(namespace.get(attr), _FieldSpec):
                raise TypeError(
                    f"Field `{attr}` in `{name}` must be declared with InputField or OutputField, "
                    f"but field `{attr}` has no field declaration; write e.g. "
                    f"`{attr}: {_annotation_text(annotations[attr])} = dspy.InputField()`")
        for attr, value in list(namespace.items()):
            if isinstance(value, _FieldSpec):
                ann = annotations.get(attr, str)
                if isinstance(ann, str):  # `from __future__ import annotations` in user code
                    ann = _parse_type(ann, attr, f"class {name}", _module_types(namespace))
                field = SignatureField(attr, value.kind, ann, value.desc, value.default)
                (inputs if value.kind == "input" else outputs)[attr] = field
                del namespace[attr]
        cls = super().__new__(mcs, name, bases, namespace, **kwargs)
        cls.input_fields = inputs
        cls.output_fields = outputs
        doc = namespace.get("__doc__")
        cls.instructions = (typing.cast(str, doc).strip() if doc else "") or _default_instructions(
            inputs, outputs)
        return cls

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls is Signature:
            return _from_string(*args, **kwargs)
        raise TypeError(f"{cls.__name__} is a signature class: pass it to Predict(...), "
                        "don't instantiate it")

    def __repr__(cls) -> str:
        return f"{cls.__name__}({cls.signature})"

    @property
    def signature(cls) -> str:
        """The string form: ``"question -> answer"``."""
        return (", ".join(cls.input_fields) + " -> " + ", ".join(cls.output_fields)).strip()

    def with_instructions(cls, instructions: str) -> type[Signature]:
        """Return a copy of the signature with other instructions."""
        return _make(cls.__name__, cls.input_fields, cls.output_fields, instructions)

    def prepend(cls, name: str, field: Any, type_: Any = str) -> type[Signature]:
        """Return a copy with an extra field first among the inputs or outputs."""
        return cls._insert(name, field, type_, first=True)

    def append(cls, name: str, field: Any, type_: Any = str) -> type[Signature]:
        """Return a copy with an extra field last among the inputs or outputs."""
        return cls._insert(name, field, type_, first=False)

    def _insert(cls, name: str, field: Any, type_: Any, first: bool) -> type[Signature]:
        if not isinstance(field, _FieldSpec):
            raise TypeError(f"Signature.prepend/append: field must be InputField() or "
                            f"OutputField(), got {field!r}")
        new = SignatureField(name, field.kind, type_, field.desc, field.default)
        table = cls.input_fields if field.kind == "input" else cls.output_fields
        rest = {k: v for k, v in table.items() if k != name}
        merged = {name: new, **rest} if first else {**rest, name: new}
        inputs, outputs = ((merged, cls.output_fields) if field.kind == "input"
                           else (cls.input_fields, merged))
        instructions = cls.instructions
        if instructions == _default_instructions(cls.input_fields, cls.output_fields):
            instructions = _default_instructions(inputs, outputs)
        return _make(cls.__name__, inputs, outputs, instructions)


class Signature(metaclass=_SignatureMeta):
    """Base class of class-form signatures; ``Signature("a, b -> c")`` builds one from a string.

    Raises ``ValueError`` for a malformed string (no ``->``, a bad name, an unknown type).
    """


def _annotation_text(annotation: Any) -> str:
    return annotation if isinstance(annotation, str) else type_name(annotation)


def ensure_signature(signature: Any) -> type[Signature]:
    """Return ``signature`` as a signature class (a string is parsed).

    Raises ``TypeError`` for anything else.
    """
    if isinstance(signature, str):
        return _from_string(signature)
    if isinstance(signature, type) and issubclass(signature, Signature):
        return signature
    raise TypeError(f"expected a signature string like 'question -> answer' or a Signature "
                    f"class, got {signature!r}")


def type_name(annotation: Any) -> str:
    """Return the readable name of a field type: ``str``, ``list[str]``, ``Literal['a', 'b']``."""
    if isinstance(annotation, type) and not typing.get_args(annotation):
        return annotation.__name__
    if annotation is Any:
        return "Any"
    if annotation is None or annotation is type(None):
        return "None"
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Literal:
        return "Literal[" + ", ".join(repr(a) for a in args) + "]"
    if origin is Union:
        return " | ".join(type_name(a) for a in args)
    if origin is not None:
        base = getattr(origin, "__name__", str(origin))
        return f"{base}[" + ", ".join(type_name(a) for a in args) + "]"
    return str(annotation).replace("typing.", "")


def _default_instructions(inputs: dict[str, SignatureField],
                          outputs: dict[str, SignatureField]) -> str:
    ins = ", ".join(f"`{n}`" for n in inputs)
    outs = ", ".join(f"`{n}`" for n in outputs)
    return f"Given the fields {ins}, produce the fields {outs}." if ins else \
        f"Produce the fields {outs}."


def _make(name: str, inputs: dict[str, SignatureField], outputs: dict[str, SignatureField],
          instructions: str) -> type[Signature]:
    cls = _SignatureMeta(name, (Signature,), {"__doc__": instructions})
    cls.input_fields = {k: replace(v) for k, v in inputs.items()}
    cls.output_fields = {k: replace(v) for k, v in outputs.items()}
    cls.instructions = instructions
    return typing.cast(type[Signature], cls)


def _from_string(text: Any, instructions: str | None = None) -> type[Signature]:
    if not isinstance(text, str):
        raise TypeError(f"Signature: expected a string like 'question -> answer', got {text!r}")
    if text.count("->") != 1:
        raise ValueError(f"Signature: {text!r} must have exactly one '->' between inputs and "
                         "outputs, e.g. 'question -> answer'")
    left, right = text.split("->")
    inputs = _parse_side(left, "input", text)
    outputs = _parse_side(right, "output", text)
    if not outputs:
        raise ValueError(f"Signature: {text!r} has no output field; name at least one after "
                         "'->', e.g. 'question -> answer'")
    if instructions is None:
        instructions = _default_instructions(inputs, outputs)
    return _make("StringSignature", inputs, outputs, instructions)


def _parse_side(side: str, kind: str, text: str) -> dict[str, SignatureField]:
    fields: dict[str, SignatureField] = {}
    for item in _split_top_level(side):
        item = item.strip()
        if not item:
            if side.strip():
                raise ValueError(f"Signature: empty field name in {text!r}")
            continue
        name, _, type_text = item.partition(":")
        name = name.strip()
        if not name.isidentifier():
            raise ValueError(f"Signature: {name!r} in {text!r} is not a valid field name; use "
                             "letters, digits and underscores")
        if name in fields:
            raise ValueError(f"Signature: {kind} field {name!r} appears twice in {text!r}")
        annotation = _parse_type(type_text.strip(), name, repr(text)) if type_text.strip() else str
        fields[name] = SignatureField(name, kind, annotation)
    return fields


def _split_top_level(side: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in side:
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


_TYPE_NAMES: dict[str, Any] = {
    "str": str, "int": int, "float": float, "bool": bool, "bytes": bytes,
    "list": list, "dict": dict, "tuple": tuple, "set": set,
    "List": list, "Dict": dict, "Tuple": tuple, "Set": set,
    "Any": Any, "None": type(None), "Optional": Optional, "Union": Union, "Literal": Literal,
}


def _module_types(namespace: dict[str, Any]) -> dict[str, Any]:
    """The classes defined or imported at the top of the module a class body is in."""
    module = sys.modules.get(namespace.get("__module__", ""))
    return {k: v for k, v in vars(module).items() if isinstance(v, type)} if module else {}


def _parse_type(text: str, field: str, where: str, names: dict[str, Any] | None = None) -> Any:
    """Read a type written as text; names outside the fixed table are looked up in
    ``names`` (classes only, e.g. a pydantic model of the user's module), never evaluated."""
    try:
        tree = ast.parse(text, mode="eval").body
        return _resolve(tree, names or {})
    except (SyntaxError, _UnknownType, TypeError) as e:
        raise ValueError(f"Signature: cannot read the type {text!r} of field {field!r} in "
                         f"{where} ({e}); use str, int, float, bool, list[...], dict[...], "
                         "Literal[...] or Optional[...]") from None


class _UnknownType(Exception):
    pass


def _resolve(node: ast.expr, names: dict[str, Any]) -> Any:
    if isinstance(node, ast.Name):
        if node.id in _TYPE_NAMES:
            return _TYPE_NAMES[node.id]
        if node.id in names:
            return names[node.id]
        raise _UnknownType(f"unknown type name {node.id!r}")
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
            and node.value.id == "typing":
        return _resolve(ast.Name(node.attr), names)
    if isinstance(node, ast.Constant) and node.value is None:
        return type(None)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return Union[_resolve(node.left, names), _resolve(node.right, names)]  # noqa: UP007 - built at run time from parsed text
    if isinstance(node, ast.Subscript):
        base = _resolve(node.value, names)
        items = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        if base is Literal:
            values = []
            for item in items:
                if not isinstance(item, ast.Constant):
                    raise _UnknownType("Literal takes constants only")
                values.append(item.value)
            return Literal[tuple(values)]
        args = tuple(_resolve(item, names) for item in items)
        return base[args if len(args) > 1 else args[0]]
    raise _UnknownType(f"unsupported type expression {ast.unparse(node)!r}")
