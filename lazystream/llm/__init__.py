"""LLM modules: ``OnlineChatModule`` (any OpenAI-compatible API), ``TrainableModule``
(deploys a local server), and the bundled scripted engine (``lazystream.llm.engine``)."""
from . import engine
from .errors import (
    DeployError,
    LLMConfigError,
    LLMError,
    LLMStreamError,
    LLMTimeoutError,
)
from .online import OnlineChatModule
from .trainable import TrainableModule

__all__ = ["DeployError", "LLMConfigError", "LLMError", "LLMStreamError", "LLMTimeoutError",
           "OnlineChatModule", "TrainableModule", "engine"]
