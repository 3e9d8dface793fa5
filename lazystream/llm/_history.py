"""LazyLLM's ``llm_chat_history``: earlier turns of a conversation, as OpenAI messages.

Each item is either ``[user_text, assistant_text]`` (a list or tuple of at most two
strings: one turn) or an OpenAI message dict (``{"role": ..., "content": ...}``), so
``[["hi", "Hello! How can I help?"], {"role": "user", "content": "..."}]`` is valid.
"""
from __future__ import annotations

from typing import Any

from .errors import LLMConfigError

__all__ = ["history_messages"]


def history_messages(history: Any, owner: str = "llm") -> list[dict[str, Any]]:
    """Return ``history`` as OpenAI messages, in order.

    Raises ``LLMConfigError`` naming the bad item and the accepted forms.
    """
    if history is None:
        return []
    if isinstance(history, (str, bytes, dict)) or not isinstance(history, (list, tuple)):
        raise LLMConfigError(f"{owner}: llm_chat_history must be a list of [user, assistant] "
                             f"pairs or of OpenAI message dicts, got {history!r}")
    messages: list[dict[str, Any]] = []
    for i, item in enumerate(history):
        if isinstance(item, dict) and isinstance(item.get("role"), str):
            messages.append(dict(item))
        elif isinstance(item, (list, tuple)) and len(item) <= 2:
            for role, text in zip(("user", "assistant"), item):
                messages.append({"role": role, "content": text})
        else:
            raise LLMConfigError(
                f"{owner}: llm_chat_history item {i} is {item!r}; each item must be a "
                f"[user, assistant] pair or a message dict {{'role': ..., 'content': ...}}")
    return messages
