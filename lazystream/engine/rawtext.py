"""Raw-text tool-call formats: how chat models without a tool parser write calls as text.

* ``internlm2``: ``<|action_start|><|plugin|>\\n{"name": ..., "parameters": {...}}<|action_end|>``
* ``qwen``: ``<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>``

The engine uses ``render`` to reply as such a model; ``lazystream.llm`` parses the same
formats back out of a stream.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

__all__ = ["FORMATS", "RawFormat", "get_format", "render"]


@dataclass(frozen=True)
class RawFormat:
    """The special tokens around one call and the JSON key that holds its arguments."""

    name: str
    start: str
    end: str
    args_key: str
    prefix: str = ""   # written right after ``start``
    suffix: str = ""   # written right before ``end``


FORMATS: dict[str, RawFormat] = {
    "internlm2": RawFormat("internlm2", "<|action_start|><|plugin|>", "<|action_end|>",
                           "parameters", prefix="\n"),
    "qwen": RawFormat("qwen", "<tool_call>", "</tool_call>", "arguments",
                      prefix="\n", suffix="\n"),
}


def get_format(name: str) -> RawFormat:
    """Return the format called ``name``. Raises ``ValueError`` naming the known formats."""
    try:
        return FORMATS[name]
    except (KeyError, TypeError):
        raise ValueError(f"tool_call_format {name!r} is unknown; use one of "
                         f"{', '.join(sorted(FORMATS))} (or None for OpenAI tool calls)") from None


def render(fmt: RawFormat, name: str, arguments_json: str) -> str:
    """Return one call written as raw text (``arguments_json`` is inserted verbatim)."""
    body = f'{{"name": {json.dumps(name, ensure_ascii=False)}, "{fmt.args_key}": {arguments_json}}}'
    return f"{fmt.start}{fmt.prefix}{body}{fmt.suffix}{fmt.end}"
