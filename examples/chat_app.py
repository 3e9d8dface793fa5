"""The seed's weather agent behind a UI: the viewer, an OpenAI-compatible endpoint, the
Vercel AI SDK and AG-UI streams, mounted in your own web app.

    python examples/chat_app.py                 # http://127.0.0.1:8000/  (the viewer)
    python examples/chat_app.py --port 9000

Then, from anything that speaks OpenAI:

    client = openai.OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="unused")
    client.chat.completions.create(model="weather", stream=True,
                                   messages=[{"role": "user", "content": "Weather in Tokyo?"}])

or point a `useChat` page at http://127.0.0.1:8000/api/chat, or an AG-UI client at /agui.

The app is FastAPI when FastAPI is installed (it is not a lazystream dependency), else
Starlette; either way lazystream's part is one line, ``mount("/", create_app(...))``, next to
your own routes (``/healthz`` here). With no ``OPENAI_API_KEY`` the agent talks to the
bundled scripted engine (``examples/weather_policy.py``); set ``OPENAI_API_KEY`` (and
``OPENAI_BASE_URL``, ``LAZYSTREAM_MODEL``) for a real model. ``LAZYSTREAM_TOKEN`` turns on
bearer-token access.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import weather_agent  # noqa: E402,F401  (registers the seed's two weather tools)
from lazystream.web import create_app  # noqa: E402


def make_agent() -> Any:
    """The seed's FunctionCallAgent with the two weather tools, streaming."""
    import lazystream as lazyllm
    from lazystream.tools import FunctionCallAgent
    llm = lazyllm.OnlineChatModule(stream=True)
    return FunctionCallAgent(llm, ["get_current_weather", "get_n_day_weather_forecast"])


def build_app(agent: Any, *, token: str | None = None) -> Any:
    """Your app with lazystream mounted at ``/``: FastAPI if installed, else Starlette."""
    edge = create_app({"weather": agent}, token=token, cors_origins=["http://localhost:3000"])
    try:
        from fastapi import FastAPI
    except ImportError:
        FastAPI = None
    if FastAPI is not None:
        app = FastAPI(title="weather agent")

        @app.get("/healthz")
        def healthz() -> dict[str, str]:
            return {"status": "ok"}

        app.mount("/", edge)   # after your own routes: they match first
        return app
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Mount, Route

    async def healthz(request: Any) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return Starlette(routes=[Route("/healthz", healthz), Mount("/", app=edge)])


def main(argv: list[str] | None = None) -> int:
    import uvicorn
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    engine = None
    if not os.environ.get("OPENAI_API_KEY"):
        engine = weather_agent._use_bundled_engine(tokens_per_second=25.0)
    try:
        app = build_app(make_agent(), token=os.environ.get("LAZYSTREAM_TOKEN"))
        print(f"weather agent: viewer http://{args.host}:{args.port}/  OpenAI base_url "
              f"http://{args.host}:{args.port}/v1  AI SDK /api/chat  AG-UI /agui", flush=True)
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    finally:
        if engine is not None:
            engine.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
