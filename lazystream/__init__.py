"""lazystream: every part of an LLM application streams.

The public API, in one place. LazyLLM's model: ``ThreadPoolExecutor``,
``FileSystemQueue``, ``ModuleBase``, ``pipeline``/``parallel``. DSPy's model:
``streamify`` and ``lazystream.streaming``.
"""
import importlib
import sys as _sys

from . import session as _session_mod
from ._version import __version__
from .events import Event
from .executor import Thread, ThreadPoolExecutor
from .flow import (
    BranchError,
    _0,
    _1,
    _2,
    _3,
    _4,
    _5,
    _6,
    _7,
    _8,
    _9,
    bind,
    diverter,
    ifs,
    loop,
    package,
    parallel,
    pipeline,
    switch,
    warp,
)
from .follow import afollow, aread_session, atail, follow
from .module import ModuleBase
from .queue import FileSystemQueue, ProducerGone, SessionUnknown, StorageError, read_session, tail
from .runs import RunCancelled, cancel, check_cancelled, current_run
from .session import current_sid, session
from .stream import AsyncRunStream, RunStream, astream, stream

# The LLM side loads on first use: ``import openai`` alone takes most of a second, and a
# reader (``python -m lazystream tail``, a web worker) never needs it.
_LAZY = {
    "llm": ("DeployError", "LLMConfigError", "LLMError", "LLMStreamError", "LLMTimeoutError", "OnlineChatModule",
            "TrainableModule"),
    "programs": ("LM", "Adapter", "AdapterParseError", "BaseCallback", "ChainOfThought", "ChatAdapter", "InputField",
                 "JSONAdapter", "Module", "OutputField", "Predict", "Prediction", "Signature", "Tool", "XMLAdapter",
                 "asyncify", "configure", "context", "settings"),
    "streaming": ("streamify",),
}
_LAZY_NAMES = {name: module for module, names in _LAZY.items() for name in names}
_LAZY_MODULES = ("engine", "streaming", "web", "tools", "llm", "programs")


def __getattr__(name: str):
    """Import the LLM-side names on first use (PEP 562)."""
    if name in _LAZY_MODULES:
        value = importlib.import_module(f"{__name__}.{name}")
    elif name in _LAZY_NAMES:
        value = getattr(importlib.import_module(f"{__name__}.{_LAZY_NAMES[name]}"), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    _sys.modules[__name__].__dict__[name] = value   # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(_sys.modules[__name__].__dict__) | set(__all__))


globals = _session_mod.globals

__all__ = ["LM", "Adapter", "AdapterParseError", "AsyncRunStream", "BaseCallback", "BranchError",
           "ChainOfThought", "ChatAdapter", "DeployError", "Event", "FileSystemQueue", "InputField",
           "JSONAdapter", "LLMConfigError", "LLMError", "LLMStreamError", "LLMTimeoutError",
           "Module", "ModuleBase", "OnlineChatModule", "OutputField", "Predict", "Prediction",
           "ProducerGone", "RunCancelled", "RunStream", "SessionUnknown", "Signature",
           "StorageError", "Thread", "ThreadPoolExecutor", "Tool", "TrainableModule", "XMLAdapter",
           "_0", "_1", "_2", "_3", "_4", "_5", "_6", "_7", "_8", "_9", "__version__", "afollow",
           "aread_session", "astream", "asyncify", "atail", "bind", "cancel", "check_cancelled",
           "configure", "context", "current_run", "current_sid", "diverter", "engine", "follow",
           "globals", "ifs", "loop", "package", "parallel", "pipeline", "read_session", "session",
           "settings", "stream", "streamify", "streaming", "switch", "tail", "tools", "warp", "web"]
