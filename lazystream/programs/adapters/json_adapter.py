"""``JSONAdapter``: the LM answers with one JSON object holding the output fields.

Inputs are sent as in the ChatAdapter (``[[ ## name ## ]]`` sections); the user message
ends with ``Respond with a JSON object in the following order of fields: `a`, then `b`.``
String values are kept exactly as decoded (no stripping); streamed chunks of a field are
the decoded text too (see ``json_scanner``).
"""
from __future__ import annotations

import json
from typing import Any

from ..signature import Signature, SignatureField, type_name
from .base import Adapter, AdapterParseError, coerce_value, inputs_of, render_value
from .chat_markers import marker
from .json_scanner import JSONFieldScanner

__all__ = ["JSONAdapter"]


class JSONAdapter(Adapter):
    """Asks for and reads a JSON object reply (see the module docstring)."""

    name = "json"

    def format(self, signature: type[Signature], demos: Any,
               inputs: dict[str, Any] | None = None) -> list[dict[str, str]]:
        """Return ``[system, user]`` messages for one call: ``format(signature, inputs)``, or
        DSPy's ``format(signature, demos, inputs)`` with no demos."""
        inputs = inputs_of(demos, inputs)
        inputs_layout = "\n\n".join(f"{marker(n)}\n{{{n}}}" for n in signature.input_fields)
        outputs_layout = "{\n" + ",\n".join(
            f'  "{f.name}": {self._placeholder(f)}' for f in signature.output_fields.values()
        ) + "\n}"
        system = "\n\n".join([
            self._field_description(signature),
            "All interactions will be structured in the following way, with the appropriate "  # noqa: ISC004 - one message split over lines
            "values filled in.",
            *(["Inputs will have the following structure:", inputs_layout]
              if signature.input_fields else []),
            "Outputs will be a JSON object with the following fields.",
            outputs_layout,
            self._objective(signature),
        ])
        parts = [f"{marker(name)}\n{render_value(inputs[name])}"
                 for name in signature.input_fields if name in inputs]
        parts.append("Respond with a JSON object in the following order of fields: "
                     + ", then ".join(f"`{n}`" for n in signature.output_fields) + ".")
        return [{"role": "system", "content": system},
                {"role": "user", "content": "\n\n".join(parts)}]

    def parse(self, signature: type[Signature], text: str) -> dict[str, Any]:
        """Return the output fields of the first JSON object in ``text``.

        Raises ``AdapterParseError`` when there is no object or a field is missing.
        """
        start = text.find("{")
        try:
            if start < 0:
                raise ValueError("no '{' in the reply")
            obj, _ = json.JSONDecoder().raw_decode(text, start)
            if not isinstance(obj, dict):
                raise ValueError("the reply is not a JSON object")  # noqa: TRY004 - callers handle ValueError for every bad value
        except ValueError as e:
            raise AdapterParseError(f"JSONAdapter: the LM reply is not a JSON object ({e}); "
                                    f"expected keys {', '.join(signature.output_fields)}",
                                    adapter_name="JSONAdapter", lm_response=text) from None
        result: dict[str, Any] = {}
        for name, field in signature.output_fields.items():
            if name not in obj:
                raise AdapterParseError(
                    f"JSONAdapter: the LM reply has no key {name!r}; expected keys "
                    f"{', '.join(signature.output_fields)}",
                    adapter_name="JSONAdapter", lm_response=text, parsed_result=result)
            result[name] = coerce_value(obj[name], field, "JSONAdapter", text)
        return result

    def scanner(self, field: str) -> JSONFieldScanner:
        """Return a fresh incremental parser for output ``field``."""
        return JSONFieldScanner(field)

    @staticmethod
    def _placeholder(field: SignatureField) -> str:
        if field.annotation is str:
            return f'"{{{field.name}}}"'
        return f"{{{field.name}}}        // a {type_name(field.annotation)}"
