"""The engine's default policy: a scripted stand-in for a tool-using chat model.

It is a handful of rules, not a model:

1. the conversation ends with tool results → one sentence per result, built from the
   result's JSON (``{"location", "temperature", "unit"}`` reads as weather);
2. tools are offered → pick the tool whose name and description share most words with
   the question, and call it once per place named in the question (capitalised words
   after the first), filling enum parameters whose value the question mentions and
   integer parameters from the numbers in it;
3. otherwise → echo the last user message.

So the LazyLLM weather example runs end to end on the engine with no model and no key.
"""
from __future__ import annotations

import json
import re
from typing import Any

from .policy import Request, ToolCall, Turn, content_text

__all__ = ["demo_policy"]

_WORD = re.compile(r"[A-Za-z]+")
_PLACE = re.compile(r"\b[A-Z][a-z]+(?:\s+[A-Z][a-z]+)*")
_SENTENCE_START = re.compile(r"(?:^|[.!?]\s+)$")
_NUMBER = re.compile(r"\b(\d+)\b")
_STOP = {"the", "a", "an", "in", "of", "and", "or", "to", "for", "is", "it", "what", "get",
         "like", "today", "e", "g", "s", "use", "given", "this", "from", "with", "which"}


def demo_policy(request: Request) -> Turn | str:
    """Answer tool results, call offered tools, or echo (see the module docstring)."""
    if request.tool_results:
        return _summarise(request)
    if request.tools:
        calls = _plan(request.last_user, request.tools)
        if calls:
            return Turn(content="", tool_calls=calls)
    return request.last_user


def _words(text: str) -> set[str]:
    return {w.lower() for w in _WORD.findall(text)} - _STOP


def _plan(question: str, tools: list[dict[str, Any]]) -> list[ToolCall]:
    asked = _words(question)
    best, best_score = None, -1
    for tool in tools:
        fn = tool.get("function", {})
        name_words = _words(fn.get("name", "").replace("_", " "))
        score = 2 * len(asked & name_words) + len(asked & _words(fn.get("description", "")))
        if score > best_score:
            best, best_score = fn, score
    if best is None:
        return []
    places = [m.group() for m in _PLACE.finditer(question)
              if not _SENTENCE_START.search(question[:m.start()])]
    if not places:
        return []
    schema = best.get("parameters") or {}
    props: dict[str, Any] = schema.get("properties") or {}
    required = list(schema.get("required") or props)
    numbers = [int(n) for n in _NUMBER.findall(question)]
    lowered = question.lower()
    calls = []
    for place in places:
        args: dict[str, Any] = {}
        place_used = False
        for pname, spec in props.items():
            if spec.get("enum"):
                hit = [v for v in spec["enum"] if str(v).lower() in lowered]
                if hit:
                    args[pname] = hit[0]
            elif spec.get("type") == "integer":
                if numbers:
                    args[pname] = numbers[0]
                elif pname in required:
                    args[pname] = 1
            elif spec.get("type", "string") == "string" and not place_used:
                args[pname] = place
                place_used = True
        if place_used:
            calls.append(ToolCall(best.get("name", ""), args))
    return calls


def _summarise(request: Request) -> str:
    parts = []
    for i, result in enumerate(request.tool_results):
        text = content_text(result.get("content"))
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, dict) and "location" in data and "temperature" in data:
            unit = str(data.get("unit", "")).capitalize()
            degrees = f"{data['temperature']} degrees {unit}".rstrip()
            days = f" for the next {data['num_days']} days" if "num_days" in data else ""
            parts.append(f"The current weather in {data['location']}{days} is {degrees}" if i == 0
                         else f"in {data['location']}{days}, it is {degrees}")
        else:
            parts.append(f"{result.get('name') or 'the tool'} returned {text}")
    return ", and ".join(parts) + "."
