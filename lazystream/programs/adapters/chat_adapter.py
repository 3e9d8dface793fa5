"""``ChatAdapter``: DSPy's ``[[ ## field ## ]]`` chat format.

The system message describes the input fields, the output fields in order, the layout and
the instructions; the user message holds one ``[[ ## name ## ]]`` section per input that was
given, then asks for the outputs::

    Respond with the corresponding output fields, starting with the field `[[ ## reasoning ## ]]`,
    then `[[ ## sum ## ]]`, and then ending with the marker for `[[ ## completed ## ]]`.
"""
from __future__ import annotations

from typing import Any

from ..signature import Signature, SignatureField
from .base import Adapter, AdapterParseError, coerce_value, inputs_of, render_value
from .chat_markers import ChatFieldScanner, marker, sections

__all__ = ["ChatAdapter"]


class ChatAdapter(Adapter):
    """Formats prompts and parses replies in DSPy's chat format (see the module docstring).

    With ``use_json_adapter_fallback`` (the default, as in DSPy) a reply that does not parse
    — a model that answers in JSON, say — makes ``Predict`` ask again with ``JSONAdapter``.
    """

    name = "chat"

    def __init__(self, callbacks: list[Any] | None = None,
                 use_json_adapter_fallback: bool = True) -> None:
        super().__init__(callbacks)
        self.use_json_adapter_fallback = bool(use_json_adapter_fallback)

    def format(self, signature: type[Signature], demos: Any,
               inputs: dict[str, Any] | None = None) -> list[dict[str, str]]:
        """Return ``[system, user]`` messages for one call: ``format(signature, inputs)``, or
        DSPy's ``format(signature, demos, inputs)`` with no demos."""
        inputs = inputs_of(demos, inputs)
        system = "\n\n".join([
            self._field_description(signature),
            self._structure(signature),
            self._objective(signature),
        ])
        parts = [f"{marker(name)}\n{render_value(inputs[name])}"
                 for name in signature.input_fields if name in inputs]
        parts.append(self._output_request(signature))
        return [{"role": "system", "content": system},
                {"role": "user", "content": "\n\n".join(parts)}]

    def parse(self, signature: type[Signature], text: str) -> dict[str, Any]:
        """Return the output fields found in ``text``, converted to their types.

        Raises ``AdapterParseError`` naming the first missing field and showing the reply.
        """
        found = sections(text)
        result: dict[str, Any] = {}
        for name, field in signature.output_fields.items():
            if name not in found:
                raise AdapterParseError(
                    f"ChatAdapter: the LM reply has no {marker(name)} field; expected "
                    f"{', '.join(marker(n) for n in signature.output_fields)}",
                    adapter_name="ChatAdapter", lm_response=text, parsed_result=result)
            result[name] = coerce_value(found[name], field, "ChatAdapter", text)
        return result

    def scanner(self, field: str) -> ChatFieldScanner:
        """Return a fresh incremental parser for output ``field``."""
        return ChatFieldScanner(field)

    def _structure(self, signature: type[Signature]) -> str:
        def block(fields: dict[str, SignatureField]) -> str:
            return "\n\n".join(f"{marker(f.name)}\n{{{f.name}}}" + (
                f"        # note: the value you produce {self._type_note(f)}"
                if self._type_note(f) else "") for f in fields.values())
        parts = ["All interactions will be structured in the following way, with the "  # noqa: ISC004 - one message split over lines
                 "appropriate values filled in."]
        if signature.input_fields:
            parts.append(block(signature.input_fields))
        parts.append(block(signature.output_fields))
        parts.append(marker("completed"))
        return "\n\n".join(parts)

    def _output_request(self, signature: type[Signature]) -> str:
        def one(f: SignatureField) -> str:
            note = self._type_note(f)
            return f"`{marker(f.name)}`" + (f" (which {note})" if note else "")
        fields = [one(f) for f in signature.output_fields.values()]
        return ("Respond with the corresponding output fields, starting with the field "
                + ", then ".join(fields)
                + f", and then ending with the marker for `{marker('completed')}`.")
