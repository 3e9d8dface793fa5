"""Flows: ``pipeline`` runs steps one after another, ``parallel`` runs branches at once.

Both are modules (naming, ``return_trace``) and take modules or plain callables.
``parallel`` runs its branches on ``lazystream.ThreadPoolExecutor`` under the caller's
session; each branch's events carry ``branch<i>`` in their ``ns``, so a reader can tell
interleaved branches apart.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .executor import ThreadPoolExecutor
from .module import ModuleBase
from .session import ns_scope

__all__ = ["pipeline", "parallel", "BranchError"]


class BranchError(RuntimeError):
    """A ``parallel`` branch failed; ``.branch`` is its index, ``__cause__`` the error."""

    def __init__(self, branch: int, name: str, error: BaseException) -> None:
        super().__init__(f"parallel branch {branch} ({name}) failed: {type(error).__name__}: {error}")
        self.branch = branch


def _check_steps(kind: str, steps: tuple) -> list[Callable[..., Any]]:
    if not steps:
        raise ValueError(f"{kind}: give at least one step")
    for i, step in enumerate(steps):
        if not callable(step):
            raise TypeError(f"{kind}: step {i} ({step!r}) is not callable; pass a module or a function")
    return list(steps)


def _step_name(step: Callable[..., Any]) -> str:
    return step.name if isinstance(step, ModuleBase) else getattr(step, "__name__", type(step).__name__)


class pipeline(ModuleBase):  # noqa: N801 - the seed's lower-case flow names
    """Feed the input to the first step and each step's output to the next; return the last."""

    def __init__(self, *steps: Callable[..., Any], return_trace: bool = False, name: str | None = None) -> None:
        super().__init__(return_trace=return_trace, name=name)
        self.steps = _check_steps("pipeline", steps)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        first, *rest = self.steps
        value = first(*args, **kwargs)
        for step in rest:
            value = step(value)
        return value


class parallel(ModuleBase):  # noqa: N801
    """Give the same input to every branch, run them at once, return results in branch order.

    Raises ``BranchError`` naming the first failing branch (by index).
    """

    def __init__(self, *steps: Callable[..., Any], return_trace: bool = False, name: str | None = None) -> None:
        super().__init__(return_trace=return_trace, name=name)
        self.steps = _check_steps("parallel", steps)

    def forward(self, *args: Any, **kwargs: Any) -> tuple:
        def run(i: int, step: Callable[..., Any]) -> Any:
            with ns_scope(f"branch{i}"):
                return step(*args, **kwargs)

        with ThreadPoolExecutor(max_workers=len(self.steps)) as pool:
            futures = [pool.submit(run, i, step) for i, step in enumerate(self.steps)]
            results = []
            for i, future in enumerate(futures):
                try:
                    results.append(future.result())
                except Exception as e:
                    raise BranchError(i, _step_name(self.steps[i]), e) from e
        return tuple(results)
