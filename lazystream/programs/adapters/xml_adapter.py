"""``XMLAdapter``: DSPy's XML format — each field wrapped in ``<name>…</name>`` tags.

The system message describes the fields, the layout (inputs, then outputs, each in its
tags) and the instructions; the user message holds one ``<name>`` element per given input
and ends with::

    Respond with the corresponding output fields wrapped in XML tags `<reasoning>`, then `<sum>`.

A field's value is the text between its first ``<name>`` and the next ``</name>``,
stripped of surrounding whitespace — in ``parse`` and in the streamed chunks alike. As a
``ChatAdapter`` it falls back to ``JSONAdapter`` when the reply does not parse.
"""
from __future__ import annotations

import re
from typing import Any

from ..signature import Signature, SignatureField
from .base import AdapterParseError, coerce_value, inputs_of, render_value
from .chat_adapter import ChatAdapter
from .xml_scanner import XMLFieldScanner

__all__ = ["XMLAdapter"]

_ELEMENT = re.compile(r"<(?P<name>\w+)>(?P<content>.*?)</(?P=name)>", re.DOTALL)


def elements(text: str) -> dict[str, str]:
    """Return ``{tag: stripped content}`` for each ``<tag>…</tag>`` in ``text``; the first wins."""
    found: dict[str, str] = {}
    for m in _ELEMENT.finditer(text):
        found.setdefault(m.group("name"), m.group("content").strip())
    return found


class XMLAdapter(ChatAdapter):
    """Formats prompts and parses replies with XML tags (see the module docstring)."""

    name = "xml"

    def format(self, signature: type[Signature], demos: Any,
               inputs: dict[str, Any] | None = None) -> list[dict[str, str]]:
        """Return ``[system, user]`` messages for one call: ``format(signature, inputs)``, or
        DSPy's ``format(signature, demos, inputs)`` with no demos."""
        inputs = inputs_of(demos, inputs)
        system = "\n\n".join([
            self._field_description(signature),
            self._xml_structure(signature),
            self._objective(signature),
        ])
        parts = [f"<{name}>\n{render_value(inputs[name])}\n</{name}>"
                 for name in signature.input_fields if name in inputs]
        if signature.output_fields:
            parts.append("Respond with the corresponding output fields wrapped in XML tags "
                         + ", then ".join(f"`<{n}>`" for n in signature.output_fields) + ".")
        return [{"role": "system", "content": system},
                {"role": "user", "content": "\n\n".join(parts)}]

    def parse(self, signature: type[Signature], text: str) -> dict[str, Any]:
        """Return the output fields found in ``text``, converted to their types.

        Raises ``AdapterParseError`` naming the missing fields and showing the reply.
        """
        found = elements(text)
        result = {name: coerce_value(found[name], field, "XMLAdapter", text)
                  for name, field in signature.output_fields.items() if name in found}
        missing = [n for n in signature.output_fields if n not in result]
        if missing:
            raise AdapterParseError(
                f"XMLAdapter: the LM reply has no {', '.join(f'<{n}>' for n in missing)} "
                f"element; expected {', '.join(f'<{n}>' for n in signature.output_fields)}",
                adapter_name="XMLAdapter", lm_response=text, parsed_result=result)
        return result

    def scanner(self, field: str) -> XMLFieldScanner:  # type: ignore[override]  # same interface, another class
        """Return a fresh incremental parser for output ``field``."""
        return XMLFieldScanner(field)

    def _xml_structure(self, signature: type[Signature]) -> str:
        def block(fields: dict[str, SignatureField]) -> str:
            return "\n\n".join(
                f"<{f.name}>\n{{{f.name}}}"
                + (f"        # note: the value you produce {self._type_note(f)}"
                   if self._type_note(f) else "")
                + f"\n</{f.name}>" for f in fields.values())
        parts = ["All interactions will be structured in the following way, with the "  # noqa: ISC004 - one message split over lines
                 "appropriate values filled in."]
        if signature.input_fields:
            parts.append(block(signature.input_fields))
        if signature.output_fields:
            parts.append(block(signature.output_fields))
        return "\n\n".join(parts)
