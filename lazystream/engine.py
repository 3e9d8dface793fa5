"""``lazystream.engine``: the bundled scripted OpenAI-compatible engine (see ``lazystream.llm.engine``)."""
from .llm.engine import *
from .llm.engine import __all__  # noqa: F401
