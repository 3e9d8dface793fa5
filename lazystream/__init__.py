"""lazystream: every part of an LLM application streams.

The public API, in one place. LazyLLM's model: ``ThreadPoolExecutor``,
``FileSystemQueue``, ``ModuleBase``, ``pipeline``/``parallel``. DSPy's model:
``streamify`` and ``lazystream.streaming``.
"""
from . import session as _session_mod
from .events import Event
from .executor import Thread, ThreadPoolExecutor
from .flow import (BranchError, _0, _1, _2, _3, _4, _5, _6, _7, _8, _9, bind, diverter, ifs, loop, package,
                   parallel, pipeline, switch, warp)
from .follow import follow
from .runs import RunCancelled, cancel, check_cancelled, current_run
from .module import ModuleBase
from .queue import FileSystemQueue, ProducerGone, StorageError, read_session, tail
from .session import current_sid, session
from .llm import (DeployError, LLMConfigError, LLMError, LLMStreamError, LLMTimeoutError, OnlineChatModule,
                  TrainableModule)
from . import engine
from .programs import (LM, AdapterParseError, BaseCallback, ChainOfThought, ChatAdapter, InputField, JSONAdapter,
                       Module, OutputField, Predict, Prediction, Signature, Tool, XMLAdapter, asyncify, configure,
                       context, settings)
from . import streaming
from .streaming import streamify
from . import web
from . import tools

globals = _session_mod.globals  # noqa: A001 - the seed's name

__all__ = [
    "session", "current_sid", "globals", "Event",
    "FileSystemQueue", "read_session", "tail", "StorageError", "ProducerGone",
    "ThreadPoolExecutor", "Thread", "ModuleBase", "follow",
    "pipeline", "parallel", "diverter", "warp", "ifs", "switch", "loop", "bind", "package", "BranchError",
    "_0", "_1", "_2", "_3", "_4", "_5", "_6", "_7", "_8", "_9",
    "cancel", "check_cancelled", "current_run", "RunCancelled",
    "OnlineChatModule", "TrainableModule", "engine", "tools",
    "LLMError", "LLMTimeoutError", "LLMStreamError", "LLMConfigError", "DeployError",
    "Signature", "InputField", "OutputField", "Prediction", "Predict", "ChainOfThought", "Module", "Tool",
    "LM", "configure", "settings", "context", "ChatAdapter", "JSONAdapter", "XMLAdapter", "AdapterParseError", "BaseCallback", "asyncify",
    "streamify", "streaming", "web",
]
