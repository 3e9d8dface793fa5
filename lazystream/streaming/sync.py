"""``apply_sync_streaming``: read an async stream from sync code (DSPy's helper).

The async generator runs in an event loop of its own, in a thread started at the first
read, with a copy of the caller's context. Items reach the caller in order through a
queue; an exception of the stream is raised in the caller (DSPy's helper loses it); closing
the sync generator early cancels the async one, which runs its cleanup (a streamified
program stops at its next token).
"""
from __future__ import annotations

import asyncio
import contextvars
import queue
import threading
from collections.abc import AsyncIterator, Generator
from typing import Any

__all__ = ["apply_sync_streaming"]

_JOIN = 10.0   # how long closing waits for the stream's cleanup; its own reads time out sooner


def apply_sync_streaming(async_generator: AsyncIterator[Any]) -> Generator[Any, None, None]:
    """Return a generator that yields the items of ``async_generator``.

    Raises what the async generator raises, after the items before it.
    """
    if not hasattr(async_generator, "__anext__"):
        raise TypeError(f"apply_sync_streaming: expected an async generator (e.g. the stream "
                        f"of a streamified program), got {async_generator!r}")
    items: queue.Queue[tuple[str, Any]] = queue.Queue()
    started = threading.Event()
    handle: dict[str, Any] = {}
    context = contextvars.copy_context()

    async def pump() -> None:
        handle["loop"], handle["task"] = asyncio.get_running_loop(), asyncio.current_task()
        started.set()
        try:
            async for item in async_generator:
                items.put(("item", item))
        except asyncio.CancelledError:
            pass   # the reader left: nobody waits for more
        except BaseException as e:  # noqa: BLE001 - handed to the reader, raised there
            items.put(("error", e))
        finally:
            aclose = getattr(async_generator, "aclose", None)
            if aclose is not None:
                await aclose()
            items.put(("done", None))

    thread = threading.Thread(target=context.run, args=(asyncio.run, pump()), daemon=True,
                              name="lazystream-sync-stream")
    thread.start()
    finished = False
    try:
        while True:
            kind, value = items.get()
            if kind == "done":
                finished = True
                return
            if kind == "error":
                finished = True
                raise value
            yield value
    finally:
        if not finished:
            started.wait(_JOIN)
            loop, task = handle.get("loop"), handle.get("task")
            if loop is not None and task is not None:
                try:
                    loop.call_soon_threadsafe(task.cancel)
                except RuntimeError:
                    pass   # the loop already closed: the stream ended on its own
        thread.join(_JOIN)
