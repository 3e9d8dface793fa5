"""Running a tool that is ``async def`` (or returns an awaitable) to its result.

The awaitable runs on a fresh event loop in the tool's worker thread, so a tool never
hands the model ``<coroutine object …>``. The tool's timeout cancels the task (it does not
keep running, unlike a sync tool's thread), and so does cancelling the run.
"""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import Any

from ..runs import RunCancelled, current_run

__all__ = ["run_awaitable"]


def run_awaitable(awaitable: Awaitable[Any], timeout: float | None, name: str) -> Any:
    """Await ``awaitable`` on a loop of this thread; return its result.

    Raises ``TimeoutError`` after ``timeout`` seconds and ``RunCancelled`` when the run is
    cancelled (the task is cancelled in both cases).
    """
    loop = asyncio.new_event_loop()
    run = current_run()
    try:
        async def bounded() -> Any:
            return await asyncio.wait_for(awaitable, timeout)

        task = loop.create_task(bounded())

        def cancel_task() -> None:
            loop.call_soon_threadsafe(task.cancel)

        stop = run.on_cancel(cancel_task) if run is not None else contextlib.nullcontext()
        with stop:
            try:
                return loop.run_until_complete(task)
            except asyncio.TimeoutError:
                raise TimeoutError(f"async tool {name!r} did not finish within {timeout:g} s") from None
            except asyncio.CancelledError:
                raise RunCancelled(f"async tool {name!r} was cancelled with its run") from None
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
