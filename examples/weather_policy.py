"""The demo policy behind ``examples/weather_agent.py`` when no real model is configured.

``WeatherPolicy`` is a callable the bundled engine asks for each chat request (see
``lazystream.engine.policy``). It is a small rule-based "model", not a canned
transcript: it reads the request's tools and messages, and

1. when the conversation does not yet hold a weather result for every city the last user
   message names, it calls the weather tool (``get_current_weather`` by default) for those
   cities — all in one turn (parallel tool calls) or, with ``parallel=False``, one city
   per turn;
2. once it has the tool results, it composes the answer from them, e.g.
   ``The current weather in Tokyo is 10 degrees Celsius, and in Paris, it is 22 degrees
   Celsius.``

Cities are recognised from a list (``CITIES``, or the ``cities`` you pass); "in celsius"
or "in fahrenheit" in the question sets the ``unit`` argument.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from lazystream.engine.policy import Request, ToolCall, Turn

__all__ = ["WeatherPolicy", "CITIES", "compose_answer"]

CITIES = (
    "San Francisco", "New York", "Los Angeles", "Rio de Janeiro", "Hong Kong", "Buenos Aires",
    "Mexico City", "Cape Town", "Tokyo", "Paris", "Beijing", "London", "Berlin", "Madrid",
    "Rome", "Moscow", "Cairo", "Seoul", "Toronto", "Sydney", "Mumbai", "Delhi", "Singapore",
    "Bangkok", "Istanbul", "Lagos", "Nairobi", "Lima", "Dubai", "Oslo", "Vienna", "Prague",
    "Lisbon", "Dublin", "Athens", "Warsaw", "Helsinki", "Stockholm", "Shanghai", "Osaka",
    "Chicago", "Boston", "Seattle", "Denver", "Miami", "Vancouver", "Montreal", "Zurich",
)


def _unit_of(question: str) -> str | None:
    lowered = question.lower()
    if "celsius" in lowered:
        return "celsius"
    if "fahrenheit" in lowered:
        return "fahrenheit"
    return None


def _phrase(result: Any) -> str:
    """``10 degrees Celsius`` from a tool result, or why there is none."""
    if isinstance(result, dict):
        temperature = result.get("temperature")
        if temperature in (None, "unknown"):
            return "unknown"
        unit = str(result.get("unit") or "").capitalize()
        return f"{temperature} degrees {unit}".rstrip()
    return f"not available ({result})"


def compose_answer(results: list[tuple[str, Any]]) -> str:
    """Return the answer sentence for ``[(city, parsed tool result), ...]``.

    One city: ``The current weather in Tokyo is 10 degrees Celsius.``; more cities are
    joined as ``..., in Paris, it is 22 degrees Celsius, and in ...``.
    """
    if not results:
        return "I could not find any weather information."
    (first, first_result), rest = results[0], results[1:]
    text = f"The current weather in {first} is {_phrase(first_result)}"
    for i, (city, result) in enumerate(rest):
        joiner = ", and in " if i == len(rest) - 1 else ", in "
        text += f"{joiner}{city}, it is {_phrase(result)}"
    return text + "."


class WeatherPolicy:
    """A rule-based engine policy that answers weather questions through a tool.

    ``tool``: the name of the tool to call (it must be among the request's tools);
    ``cities``: the city names it recognises; ``parallel``: call the tool for every city in
    one turn (True) or for one city per turn (False).
    """

    def __init__(self, tool: str = "get_current_weather", cities: Iterable[str] = CITIES,
                 parallel: bool = True) -> None:
        self.tool = tool
        self.parallel = parallel
        names = sorted(set(cities), key=len, reverse=True)  # "New York" before "York"
        if not names:
            raise ValueError("WeatherPolicy: cities is empty; give at least one city name")
        self._pattern = re.compile(r"\b(" + "|".join(re.escape(c) for c in names) + r")\b",
                                   re.IGNORECASE)
        self._canonical = {c.lower(): c for c in names}

    def cities_in(self, question: str) -> list[str]:
        """Return the cities ``question`` names, in order of appearance, each once."""
        found: list[str] = []
        for match in self._pattern.finditer(question):
            city = self._canonical[match.group(1).lower()]
            if city not in found:
                found.append(city)
        return found

    def __call__(self, request: Request) -> str | Turn | list[ToolCall]:
        question = request.last_user
        cities = self.cities_in(question)
        if not cities:
            return "Which city would you like the weather for?"
        asked, answered = self._progress(request.messages)
        pending = [c for c in cities if c not in asked]
        if pending:
            if self.tool not in request.tool_names:
                return (f"I cannot look up the weather: the request offers no "
                        f"'{self.tool}' tool (tools: {', '.join(request.tool_names) or 'none'}).")
            unit = _unit_of(question)
            todo = pending if self.parallel else pending[:1]
            return [ToolCall(self.tool, {"location": c, **({"unit": unit} if unit else {})})
                    for c in todo]
        return compose_answer([answered.get(c, (c, None)) for c in cities])

    def _progress(self, messages: list[dict[str, Any]]) -> tuple[set[str], dict[str, tuple[str, Any]]]:
        """Cities already asked for since the last user message, and their results."""
        start = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
        locations: dict[str, str] = {}   # tool_call_id -> city
        asked: set[str] = set()
        answered: dict[str, tuple[str, Any]] = {}
        for message in messages[start + 1:]:
            if message.get("role") == "assistant":
                for call in message.get("tool_calls") or ():
                    fn = call.get("function") or {}
                    if fn.get("name") != self.tool:
                        continue
                    try:
                        args = json.loads(fn.get("arguments") or "{}")
                    except json.JSONDecodeError:
                        continue
                    named = self.cities_in(str(args.get("location", "")))
                    if named:
                        locations[call.get("id", "")] = named[0]
                        asked.add(named[0])
            elif message.get("role") == "tool" and message.get("tool_call_id") in locations:
                city = locations[message["tool_call_id"]]
                content = message.get("content") or ""
                try:
                    result: Any = json.loads(content)
                except json.JSONDecodeError:
                    result = content
                shown = result.get("location", city) if isinstance(result, dict) else city
                answered[city] = (shown, result)
        return asked, answered
