"""Flows: LazyLLM's vocabulary for composing steps, every flow a module that streams.

``pipeline`` and ``loop`` run steps in order; ``parallel``, ``diverter`` and ``warp`` run
branches at once (each under its own ``branch<i>`` lineage); ``ifs`` and ``switch`` choose
a path; ``bind`` and ``_0`` … ``_9`` route arguments; ``package`` carries several values.
See ``docs/runtime.md``.
"""
from ._base import FlowBase
from .bind import bind, placeholders
from .branch import ifs, switch
from .package import package
from .parallel import BranchError, diverter, parallel, warp
from .pipeline import loop, pipeline

_0, _1, _2, _3, _4, _5, _6, _7, _8, _9 = placeholders

__all__ = ["BranchError", "FlowBase", "_0", "_1", "_2", "_3", "_4", "_5", "_6", "_7", "_8", "_9",
           "bind", "diverter", "ifs", "loop", "package", "parallel", "pipeline", "switch", "warp"]
