"""``follow``: read a worker's queues until it finishes, without losing the tail.

The seed's loop (``if value := dequeue(): … elif future.done(): break``) loses what the
worker writes between an empty ``dequeue`` and the ``done()`` check, and spins a core.
``follow`` checks ``done()`` *before* draining, so a pass that finds the future done and
the queues empty has seen everything; between passes it sleeps until notified.
"""
from __future__ import annotations

import concurrent.futures
from collections.abc import Iterable, Iterator
from typing import Any

from .events import DEFAULT_QUEUE
from .queue import FileSystemQueue, backend
from .session import current_sid

__all__ = ["follow"]


def follow(future: concurrent.futures.Future, queues: Iterable[str | FileSystemQueue] = (DEFAULT_QUEUE,),
           *, sid: str | None = None) -> Iterator[tuple[str, list[Any]]]:
    """Yield ``(queue_name, items)`` as items arrive, until ``future`` is done and drained.

    Reads the session the work was submitted under (``sid`` overrides it). Blocks
    (without spinning) while nothing is there. After draining, re-raises the worker's
    exception, if any.
    """
    qs = [q if isinstance(q, FileSystemQueue) else FileSystemQueue.get_instance(q) for q in queues]
    if not qs:
        raise ValueError("follow: give at least one queue name")
    sid = sid or getattr(future, "_lazystream_sid", None) or current_sid()
    b = backend()
    key = (sid, None)
    future.add_done_callback(lambda _: b.notify((key,)))
    while True:
        token = b.generation(key)
        finished = future.done()
        got = False
        for q in qs:
            items = q.dequeue(sid=sid)
            if items:
                got = True
                yield q.name, items
        if finished and not got:
            break
        if not got:
            b.wait(token, None, key)
    future.result()
