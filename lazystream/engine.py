"""``lazystream.engine``: the bundled scripted OpenAI-compatible engine (see ``lazystream.llm.engine``)."""
from .llm.engine import *  # noqa: F401,F403 - the name the docs use
from .llm.engine import __all__  # noqa: F401
