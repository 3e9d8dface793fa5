"""Signatures: string and class forms, types, and the errors for bad ones."""
from __future__ import annotations

from typing import Literal, Optional

import pytest

from lazystream.programs import InputField, OutputField, Signature
from lazystream.programs.signature import ensure_signature, type_name


def _shape(sig):
    return ({n: f.annotation for n, f in sig.input_fields.items()},
            {n: f.annotation for n, f in sig.output_fields.items()})


def test_string_form_without_spaces():
    sig = Signature("question->answer")
    assert _shape(sig) == ({"question": str}, {"answer": str})
    assert sig.signature == "question -> answer"


def test_string_form_with_several_fields():
    assert _shape(Signature("num1, num2->sum")) == ({"num1": str, "num2": str}, {"sum": str})


def test_string_form_with_types():
    sig = Signature("a: int, b: list[str] -> c: float")
    assert _shape(sig) == ({"a": int, "b": list[str]}, {"c": float})


def test_nested_and_optional_types():
    sig = Signature("x: dict[str, list[int]], y: Optional[int] -> z: Literal['yes', 'no'], w: int | None")
    assert _shape(sig) == ({"x": dict[str, list[int]], "y": Optional[int]},
                           {"z": Literal["yes", "no"], "w": Optional[int]})
    assert type_name(sig.output_fields["z"].annotation) == "Literal['yes', 'no']"
    assert type_name(sig.input_fields["x"].annotation) == "dict[str, list[int]]"


def test_a_name_may_be_input_and_output():
    sig = Signature("question, answer->answer, score")
    assert list(sig.input_fields) == ["question", "answer"]
    assert list(sig.output_fields) == ["answer", "score"]
    assert sig.input_fields["answer"].kind == "input"
    assert sig.output_fields["answer"].kind == "output"


def test_default_instructions_name_the_fields():
    assert Signature("num1, num2->sum").instructions == \
        "Given the fields `num1`, `num2`, produce the fields `sum`."


def test_class_form_docstring_is_the_instructions():
    class QA(Signature):
        """Answer the question in one sentence."""

        question: str = InputField()
        answer: str = OutputField(desc="one sentence")
        confidence: float = OutputField()

    assert QA.instructions == "Answer the question in one sentence."
    assert _shape(QA) == ({"question": str}, {"answer": str, "confidence": float})
    assert QA.output_fields["answer"].desc == "one sentence"
    assert ensure_signature(QA) is QA


def test_class_form_without_annotation_is_str():
    class S(Signature):
        text = InputField()
        label = OutputField()

    assert _shape(S) == ({"text": str}, {"label": str})


def test_prepend_puts_a_field_first():
    sig = Signature("num1, num2->sum").prepend("reasoning", OutputField(), str)
    assert list(sig.output_fields) == ["reasoning", "sum"]
    assert sig.instructions == "Given the fields `num1`, `num2`, produce the fields `reasoning`, `sum`."


@pytest.mark.parametrize("text, message", [
    ("question answer", "exactly one '->'"),
    ("a -> b -> c", "exactly one '->'"),
    ("question ->", "no output field"),
    ("bad name -> answer", "'bad name'"),
    ("q -> a: Foo", "unknown type name 'Foo'"),
    ("q -> a: __import__('os')", "cannot read the type"),
    ("q, q -> a", "appears twice"),
])
def test_malformed_strings_raise_naming_the_problem(text, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Signature(text)


def test_ensure_signature_rejects_other_values():
    with pytest.raises(TypeError, match="expected a signature string"):
        ensure_signature(42)


def test_signature_classes_are_not_instantiated():
    sig = Signature("a -> b")
    with pytest.raises(TypeError, match="signature class"):
        sig()
