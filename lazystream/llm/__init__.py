"""LLM modules: ``OnlineChatModule`` (any OpenAI-compatible API), ``TrainableModule``
(deploys a local server). The bundled scripted engine is ``lazystream.engine``."""
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
           "OnlineChatModule", "TrainableModule"]
