"""Sessions' event streams over HTTP: durable, live, resumable Server-Sent Events.

``serve()`` / ``SessionServer`` publish every session of this process's store (any
process sharing ``LAZYSTREAM_HOME`` can be the producer) at
``GET /sessions/{sid}/events``; ``follow_session`` reads one back as ``Event`` objects,
resuming with ``Last-Event-ID`` when the connection drops. See ``docs/web.md``.
"""
from ._client import follow_session
from ._server import SessionServer, serve

__all__ = ["SessionServer", "serve", "follow_session"]
