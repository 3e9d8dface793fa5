"""The web edge: runs of your modules and sessions' event streams over HTTP, in the wire
formats UIs speak, and a viewer page.

``create_app(modules, …)`` returns a Starlette (ASGI) app to mount in your own Starlette or
FastAPI app or to run with uvicorn; ``SessionServer`` / ``serve`` run it in a background
thread; ``follow_session`` reads a session back as ``Event`` objects, resuming after
drops; ``adapters`` holds the pure projections (OpenAI, Vercel AI SDK UI stream, AG-UI).
See ``docs/web.md``.
"""
from . import adapters
from ._access import check_sid
from ._app import create_app
from ._client import follow_session
from ._server import SessionServer, serve

__all__ = ["SessionServer", "adapters", "check_sid", "create_app", "follow_session", "serve"]
