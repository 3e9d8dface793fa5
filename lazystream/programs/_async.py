"""The async twin of ``ModuleBase.__call__``: ``await module.acall(...)``.

It does what a sync call does — pushes the module's name on the lineage, fires the module
callbacks (status hooks of ``streamify``) and writes the trace when ``return_trace`` is on —
around ``await aforward(...)``. A module without its own ``aforward`` runs its ``forward``
in a worker thread (with the caller's context), so ``acall`` never blocks the event loop.
"""
from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ..module import ModuleBase, _callbacks, _fire
from ..session import _ns

__all__ = ["acall_module", "asyncify", "forward_in_thread"]


def asyncify(program: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    """Return an async function that runs ``program(*args, **kwargs)`` in a worker thread.

    DSPy's ``dspy.asyncify``: the thread runs in a copy of the caller's context (settings
    overrides, session), so ``await asyncify(program)(question=...)`` sees the same
    configuration as a direct call. Raises ``TypeError`` for a program that is not callable.
    """
    if not callable(program):
        raise TypeError(f"asyncify: program must be callable, got {program!r}")

    async def run(*args: Any, **kwargs: Any) -> Any:
        context = contextvars.copy_context()
        return await asyncio.get_running_loop().run_in_executor(
            None, lambda: context.run(program, *args, **kwargs))

    run.__name__ = f"async_{getattr(program, '__name__', type(program).__name__)}"
    return run


async def forward_in_thread(module: ModuleBase, args: tuple, kwargs: dict) -> Any:
    """Run ``module.forward(*args, **kwargs)`` in a worker thread; return its result."""
    return await asyncify(module.forward)(*args, **kwargs)


async def acall_module(module: ModuleBase, aforward: Callable[..., Awaitable[Any]],
                       args: tuple, kwargs: dict) -> Any:
    """Await ``aforward(*args, **kwargs)`` as ``module``'s call (lineage, hooks, trace)."""
    token = _ns.set(_ns.get() + (module.name,))
    try:
        if not module.return_trace and not _callbacks.get():
            return await aforward(*args, **kwargs)
        _fire("on_module_start", module, args, kwargs)
        start = time.perf_counter()
        try:
            output = await aforward(*args, **kwargs)
        except BaseException as e:
            if module.return_trace:
                module._trace(args, kwargs, None, time.perf_counter() - start, e)
            _fire("on_module_end", module, None, e)
            raise
        if module.return_trace:
            module._trace(args, kwargs, output, time.perf_counter() - start, None)
        _fire("on_module_end", module, output, None)
        return output
    finally:
        _ns.reset(token)
