"""Wire adapters: pure projections of lazystream events onto the formats UIs speak.

Each is usable without the app, e.g. in your own FastAPI/Starlette route::

    from lazystream.web.adapters import vercel_chunks
    chunks = vercel_chunks(lazystream.tail(sid))      # an iterator of dicts

* ``openai_chunks`` / ``openai_completion``: OpenAI Chat Completions (stream and not).
* ``vercel_chunks``: the Vercel AI SDK UI message stream, protocol v1.
* ``agui_events``: AG-UI events.

Each has a projector class (``feed(event) -> list``) for streaming code that interleaves
its own heartbeats. They invent nothing: every output comes from an event (docs/web.md
has the tables).
"""
from .agui import AGUIProjector, agui_events
from .openai_chat import OpenAIProjector, openai_chunks, openai_completion
from .vercel import VercelProjector, vercel_chunks

__all__ = ["AGUIProjector", "OpenAIProjector", "VercelProjector", "agui_events", "openai_chunks",
           "openai_completion", "vercel_chunks"]
