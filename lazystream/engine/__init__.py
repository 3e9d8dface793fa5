"""The bundled scripted engine: an OpenAI-compatible HTTP server driven by a policy.

It is a *scripted* engine, not a model: tests, benchmarks and ``make demo`` run on it with
no network and no API key. See ``docs/llm.md``.

    from lazystream.engine import Engine, Turn, ToolCall

    with Engine([Turn("Let me check.", tool_calls=[ToolCall("get_weather", {"city": "Paris"})]),
                 "It is 22 degrees in Paris."]) as base_url:
        ...  # openai.OpenAI(base_url=base_url, api_key="unused")
"""
from __future__ import annotations

from .demo import demo_policy
from .faults import Faults
from .policy import (
    Deltas,
    EngineError,
    Policy,
    Reply,
    Request,
    Script,
    ToolCall,
    Turn,
    echo,
    tokenize,
)
from .rawtext import FORMATS, RawFormat, render
from .server import Engine

__all__ = ["FORMATS", "Deltas", "Engine", "EngineError", "Faults", "Policy", "RawFormat", "Reply",
           "Request", "Script", "ToolCall", "Turn", "demo_policy", "echo", "render", "serve",
           "tokenize"]


def serve(policy: Policy | list[Reply] | Reply | None = None, *, port: int = 8000,
          host: str = "127.0.0.1", **options: object) -> None:
    """Serve an ``Engine(policy, **options)`` on ``host:port`` until interrupted (blocking)."""
    Engine(policy, host=host, port=port, **options).serve_forever()  # type: ignore[arg-type]
