"""Programs: signatures, predictors, modules, tools, the LM and its settings (DSPy's model).

``import lazystream as dspy`` gives these names at the top level; see ``docs/programs.md``.
"""
from ._async import asyncify
from .adapters import Adapter, AdapterParseError, ChatAdapter, JSONAdapter, XMLAdapter
from .callback import BaseCallback
from .engine_policy import program_policy
from .lm import LM
from .module import Module
from .predict import ChainOfThought, Predict
from .prediction import Prediction
from .settings import configure, settings
from .signature import InputField, OutputField, Signature
from .tool import Tool

context = settings.context  # DSPy's `dspy.context(...)`

__all__ = ["LM", "Adapter", "AdapterParseError", "BaseCallback", "ChainOfThought", "ChatAdapter",
           "InputField", "JSONAdapter", "Module", "OutputField", "Predict", "Prediction",
           "Signature", "Tool", "XMLAdapter", "asyncify", "configure", "context", "program_policy",
           "settings"]
