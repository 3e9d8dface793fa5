"""Streaming of programs (DSPy's model): ``streamify`` with listeners and status messages.

``import lazystream as dspy`` → ``dspy.streamify``, ``dspy.streaming.StreamListener``,
``dspy.streaming.StatusMessageProvider``, … See ``docs/streaming.md``.
"""
from .listener import StreamListener
from .messages import StatusMessage, StreamResponse
from .sse import streaming_response
from .status import StatusMessageProvider
from .streamify import streamify
from .sync import apply_sync_streaming

__all__ = ["StatusMessage", "StatusMessageProvider", "StreamListener", "StreamResponse",
           "apply_sync_streaming", "streamify", "streaming_response"]
