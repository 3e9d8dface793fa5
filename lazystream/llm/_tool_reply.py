"""How a model's tool-call reply reads in a trace: the seed's shape.

``[{'id': …, 'type': 'function', 'function': {'name': …, 'arguments': {parsed}}}, …, content]``
— the calls with their JSON arguments parsed (left as text when they are not valid JSON),
then the visible content.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

__all__ = ["reply_trace_text", "seed_view"]


def _parsed(raw: Any) -> Any:
    if not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def seed_view(calls: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return OpenAI-format ``calls`` with parsed arguments, as the seed's traces show them."""
    return [{"id": c["id"], "type": "function",
             "function": {"name": c["function"]["name"], "arguments": _parsed(c["function"]["arguments"])}}
            for c in calls]


def reply_trace_text(output: Any) -> str:
    """Return the trace text of a chat module's output (text, or an assistant message)."""
    if isinstance(output, dict) and output.get("tool_calls"):
        return str([*seed_view(output["tool_calls"]), output.get("content") or ""])
    return output if isinstance(output, str) else str(output)
