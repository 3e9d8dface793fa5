"""An engine policy that plays the model for programs: it answers adapter prompts.

``program_policy(request)`` is a policy for ``lazystream.engine.Engine``. It reads the
prompt a ``ChatAdapter``, ``JSONAdapter`` or ``XMLAdapter`` built — which output fields are
asked for (the last user message names them, in order), their types (the system message
lists them) and the input values (the ``[[ ## name ## ]]`` sections or ``<name>`` elements)
— and answers in the same format: ``[[ ## field ## ]]`` sections ending with
``[[ ## completed ## ]]``, one JSON object, or one ``<field>`` element per field.

It is a handful of rules, not a model. Each output field is filled from the inputs:

* ``answer`` — riddles ``why did the X cross the Y?`` → ``To get to the other side of
  the Y!``; arithmetic ``what is 3 + 4?``; ``… in N words`` → an N-word text; no question
  given → ``I'm ready to assist you! Please provide a question.``; else an honest "I don't
  know";
* ``simplified_answer`` / ``summary`` — the ``answer`` input, first sentence, plainer words;
* ``sum`` / ``total`` / ``product`` / ``difference`` — computed from the numeric inputs;
* ``reasoning`` — a sentence or two that leads to the other outputs;
* ``score`` / ``confidence`` — ``N/A`` when there is no question, else 0.9;
* any other field — a sentence naming the field and the inputs; typed fields get a value
  of their type.

Any other request (no adapter prompt) is answered with the last user message.
"""
from __future__ import annotations

import json
import re
from typing import Any

from ..engine.policy import Request, content_text
from .adapters.chat_markers import marker, sections
from .adapters.xml_adapter import elements

__all__ = ["program_policy"]

_CHAT_ASK = re.compile(r"Respond with the corresponding output fields, starting with the field "
                       r"(.*?)and then ending with the marker", re.DOTALL)
_JSON_ASK = re.compile(r"Respond with a JSON object in the following order of fields: (.*?)\.\s*$",
                       re.DOTALL)
_XML_ASK = re.compile(r"Respond with the corresponding output fields wrapped in XML tags (.*?)\.\s*$",
                      re.DOTALL)
_FIELD_TYPE = re.compile(r"^\d+\. `(\w+)` \(([^)]*)\)", re.MULTILINE)
_NUMBER = re.compile(r"^-?\d+(?:\.\d+)?$")
_WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "the", "lazy", "dog", "while", "a", "patient", "river", "carries", "small", "boats", "past", "quiet", "villages"]


def program_policy(request: Request) -> str:
    """Return the reply to an adapter prompt (see the module docstring)."""
    user = request.last_user
    chat, as_json, as_xml = _CHAT_ASK.search(user), _JSON_ASK.search(user), _XML_ASK.search(user)
    if as_xml:
        names = re.findall(r"`<(\w+)>`", as_xml.group(1))
        inputs = {k: _plain(v) for k, v in elements(user[:as_xml.start()]).items()}
        values = _Composer(inputs, names).values()
        return "\n\n".join(f"<{n}>\n{values[n]}\n</{n}>" for n in names)
    found = chat or as_json
    if found is None:
        return user
    ask = found.group(1)
    names = [n for n in re.findall(r"\[\[ ## (\w+) ## \]\]", ask) if n != "completed"] \
        if chat else re.findall(r"`(\w+)`", ask)
    system = "".join(content_text(m.get("content")) for m in request.messages
                     if m.get("role") == "system")
    outputs_part = system.split("Your output fields are:", 1)[-1]
    types = dict(_FIELD_TYPE.findall(outputs_part))
    inputs = {k: _plain(v) for k, v in sections(user[:found.start()]).items()}
    values = _Composer(inputs, names).values()
    if as_json:
        return json.dumps({n: _typed(values[n], types.get(n, "str")) for n in names},
                          ensure_ascii=False)
    body = "".join(f"{marker(n)}\n{values[n]}\n\n" for n in names)
    return body + marker("completed")


def _plain(value: str) -> str:
    """An input rendered as JSON (a Prediction, a dict) → its one text value, if it has one."""
    text = value.strip()
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except ValueError:
            return text
        if isinstance(obj, dict):
            strings = [v for v in obj.values() if isinstance(v, str)]
            if "answer" in obj and isinstance(obj["answer"], str):
                return obj["answer"]
            if len(strings) == 1:
                return strings[0]
    return text


def _typed(value: str, type_name: str) -> Any:
    if type_name in ("int", "float") and _NUMBER.match(value):
        number = float(value)
        return int(number) if type_name == "int" and number.is_integer() else number
    if type_name == "bool":
        return value.lower() in ("true", "yes")
    if type_name.startswith("list"):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class _Composer:
    """Fills each asked field from the inputs and the fields composed before it."""

    def __init__(self, inputs: dict[str, str], names: list[str]) -> None:
        self.inputs = inputs
        self.names = names
        self.numbers = [float(v) for v in inputs.values() if _NUMBER.match(v)]

    def values(self) -> dict[str, str]:
        # Reasoning comes first in the reply but explains the others: compose it last.
        out = {n: self.field(n) for n in self.names if n != "reasoning"}
        if "reasoning" in self.names:
            out["reasoning"] = self.reasoning(out)
        return out

    def field(self, name: str) -> str:
        question = self.inputs.get("question")
        if name == "answer":
            return self.answer(question)
        if name in ("simplified_answer", "summary", "short_answer"):
            return _simplify(self.inputs.get("answer") or question or "")
        if name in ("sum", "total", "product", "difference"):
            return _fmt(self.arithmetic(name))
        if name in ("score", "confidence"):
            return "0.9" if question else "N/A"
        source = question or next(iter(self.inputs.values()), "")
        return f"The {name.replace('_', ' ')} for: {source}" if source else \
            f"A {name.replace('_', ' ')}."

    def answer(self, question: str | None) -> str:
        if not question:
            return "I'm ready to assist you! Please provide a question."
        q = question.strip()
        m = re.match(r"(?i)why did (?:a|an|the) [\w ]+? cross (?:the )?(.+?)[?.!]*$", q)
        if m:
            return f"To get to the other side of the {m.group(1)}!"
        m = re.search(r"(-?\d+(?:\.\d+)?)\s*(\+|-|\*|x|/|plus|minus|times)\s*(-?\d+(?:\.\d+)?)", q)
        if m:
            a, op, b = float(m.group(1)), m.group(2), float(m.group(3))
            result = {"+": a + b, "plus": a + b, "-": a - b, "minus": a - b, "*": a * b,
                      "x": a * b, "times": a * b}.get(op, a / b if b else float("nan"))
            return f"{_fmt(a)} {op} {_fmt(b)} is {_fmt(result)}."
        m = re.search(r"(\d+)\s*words", q)
        if m:
            n = int(m.group(1))
            words = [_WORDS[i % len(_WORDS)] for i in range(n)]
            return " ".join(words).capitalize() + "."
        return f"I don't know the answer to \"{q}\", but I would start by looking it up."

    def arithmetic(self, name: str) -> float:
        nums = self.numbers or [0.0]
        if name in ("sum", "total"):
            return sum(nums)
        if name == "product":
            result = 1.0
            for n in nums:
                result *= n
            return result
        return nums[0] - sum(nums[1:])

    def reasoning(self, outputs: dict[str, str]) -> str:
        for name in ("sum", "total", "product", "difference"):
            if name in outputs and len(self.numbers) >= 2:
                verb = {"sum": "add them together", "total": "add them together",
                        "product": "multiply them", "difference": "subtract them"}[name]
                word = {"sum": "plus", "total": "plus", "product": "times",
                        "difference": "minus"}[name]
                terms = f" {word} ".join(_fmt(n) for n in self.numbers)
                return (f"To find the {name} of the {_count(len(self.numbers))} numbers, we "
                        f"simply {verb}. Here, {terms} equals {outputs[name]}.")
        question = self.inputs.get("question")
        if question and "answer" in outputs:
            return (f"The question is \"{question.strip()}\". Thinking it through step by step "
                    f"leads to the answer: {outputs['answer']}")
        return "Let me work through the inputs step by step before giving the outputs."


def _simplify(text: str) -> str:
    first = re.split(r"(?<=[.!?])\s", text.strip(), maxsplit=1)[0]
    for old, new in (("get to", "reach"), ("in order to", "to"), ("approximately", "about"),
                     ("utilize", "use")):
        first = first.replace(old, new)
    return first


def _fmt(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else f"{number:g}"


def _count(n: int) -> str:
    return {2: "two", 3: "three", 4: "four"}.get(n, str(n))
