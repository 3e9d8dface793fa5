"""``package``: several values travelling between flow steps as one.

A flow called with several arguments, and every ``parallel``/``diverter``/``warp``, passes
a ``package``; the next step that is not itself a flow receives it unpacked (``f(*pkg)``).
It is a plain ``tuple`` in every other respect, so ``parallel(f, g)(x) == (a, b)``.
"""
from __future__ import annotations

import types
from typing import Any

__all__ = ["package"]


class package(tuple):
    """A tuple that the next step receives as separate positional arguments.

    ``package(1, 2)`` and ``package([1, 2])`` are both ``(1, 2)``; ``package(x)`` of one
    value that is not a tuple, list or generator is ``(x,)``.
    """

    __slots__ = ()

    def __new__(cls, *values: Any) -> package:  # noqa: PYI034 - always a package, as LazyLLM's
        if len(values) == 1 and isinstance(values[0], (tuple, list, types.GeneratorType)):
            return super().__new__(cls, values[0])
        return super().__new__(cls, values)
