"""Where the DSPy examples' model runs: the bundled engine, unless you point them elsewhere.

The seed examples build ``dspy.LM("openai/gpt-4o-mini")``. ``lazystream.LM`` reads
``OPENAI_BASE_URL`` at its first call, so ``start()`` makes the examples run with no
network and no key: when ``OPENAI_BASE_URL`` is not set, it starts the bundled scripted
engine (``lazystream.engine.Engine``) with the program policy — rules that answer the
ChatAdapter/JSONAdapter prompt for the fields it asks for — and exports its URL. Set
``OPENAI_BASE_URL`` (and ``OPENAI_API_KEY``) yourself to run them on a real model server.
"""
from __future__ import annotations

import atexit
import os

from lazystream.engine import Engine
from lazystream.programs import program_policy

__all__ = ["start"]


def start(tokens_per_second: float = 200.0) -> str:
    """Start the engine (paced so the streaming is visible) unless a server is configured;
    return the base URL the examples' LM will use."""
    if os.environ.get("OPENAI_BASE_URL"):
        return os.environ["OPENAI_BASE_URL"]
    engine = Engine(program_policy, tokens_per_second=tokens_per_second)
    os.environ["OPENAI_BASE_URL"] = engine.start()
    os.environ.setdefault("OPENAI_API_KEY", "unused-by-the-bundled-engine")
    atexit.register(engine.stop)
    return os.environ["OPENAI_BASE_URL"]
