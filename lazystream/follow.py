"""``follow``: read a worker's queues until it finishes, without losing the tail.

The seed's loop (``if value := dequeue(): … elif future.done(): break``) loses what the
worker writes between an empty ``dequeue`` and the ``done()`` check, and spins a core.
``follow`` checks ``done()`` *before* draining, so a pass that finds the future done and
the queues empty has seen everything; between passes it sleeps until notified.

``afollow`` is the async form, and ``atail`` / ``aread_session`` those of ``tail`` /
``read_session``: each drives the same core as its sync form and suspends on the hub
(no thread per reader, the event loop never blocked while waiting), so sync and async
yield the same items in the same order.
"""
from __future__ import annotations

import concurrent.futures
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

from .events import DEFAULT_QUEUE, Event
from .queue import ANY, FileSystemQueue, TailReader, aread_session, backend
from .session import current_sid

__all__ = ["afollow", "aread_session", "atail", "follow"]

_STEP = 0.5   # how long one async step waits before it checks the work again


class _Follower:
    """The core of ``follow``: ``step(wait)`` returns what arrived within ``wait`` s."""

    def __init__(self, future: concurrent.futures.Future, queues: Any, sid: str | None) -> None:
        if not isinstance(future, concurrent.futures.Future):
            raise TypeError(f"follow: the first argument must be the future that "
                            f"lazystream.ThreadPoolExecutor.submit returned, got {type(future).__name__} {future!r}")
        if isinstance(queues, (str, FileSystemQueue)):
            name = queues if isinstance(queues, str) else queues.name
            raise TypeError(f"follow: queues must be a list or tuple of queue names, got the single "
                            f"{type(queues).__name__} {name!r}; write follow(future, [{name!r}])")
        self.qs = [q if isinstance(q, FileSystemQueue) else FileSystemQueue.get_instance(q) for q in queues]
        if not self.qs:
            raise ValueError("follow: give at least one queue name, e.g. follow(future, ['lazy_stream'])")
        self.future = future
        self.sid = sid or getattr(future, "_lazystream_sid", None) or current_sid()
        self.done = False
        self._b = backend()
        self._key = (self.sid, ANY)   # woken by what is appended to any of its queues
        self._drained: tuple[int, int, int] | None = None   # the token of the last drain that found items
        future.add_done_callback(lambda _: self._b.notify((self._key,)))

    def step(self, wait: float | None) -> list[tuple[str, list[Any]]]:
        """Drain the queues, or wait up to ``wait`` s for something; re-raise the worker's
        exception after the last items (``done`` is then set)."""
        token = self._unchanged()
        if token is not None:
            self._b.wait(token, wait, self._key)
        token, out = self._drain()
        if not out and not self.done:
            self._b.wait(token, wait, self._key)
        return out

    async def astep(self, wait: float | None) -> list[tuple[str, list[Any]]]:
        """``step`` for coroutines: suspends on the hub, never blocks the loop."""
        token = self._unchanged()
        if token is not None:
            await self._b.wait_async(token, wait, self._key)
        token, out = self._drain()
        if not out and not self.done:
            await self._b.wait_async(token, wait, self._key)
        return out

    def _unchanged(self) -> tuple[int, int, int] | None:
        """The last drain's token if nothing was appended or finished since it began:
        the queues are then empty, so the reader waits without draining them first (one
        pass per token instead of two, the thread's whole work after a wake-up)."""
        token, self._drained = self._drained, None
        if token is not None and self._b.generation(self._key) == token and not self.future.done():
            return token
        return None

    def _drain(self) -> tuple[tuple[int, int, int], list[tuple[str, list[Any]]]]:
        token = self._b.generation(self._key)
        finished = self.future.done()
        out = []
        for q in self.qs:
            items = q.dequeue(sid=self.sid)
            if items:
                out.append((q.name, items))
        if finished and not out:
            self.done = True
            self.future.result()
        if out:
            self._drained = token
        return token, out

    def leave(self) -> None:
        """The reader left before the end: stop the work it follows."""
        if not self.done:
            self.future.cancel()


def follow(future: concurrent.futures.Future, queues: Iterable[str | FileSystemQueue] = (DEFAULT_QUEUE,),
           *, sid: str | None = None, cancel_on_exit: bool = True) -> Iterator[tuple[str, list[Any]]]:
    """Yield ``(queue_name, items)`` as items arrive, until ``future`` is done and drained.

    Reads the session the work was submitted under (``sid`` overrides it). Blocks
    (without spinning) while nothing is there. After draining, re-raises the worker's
    exception, if any. Leaving the loop early cancels the work (``future.cancel()``,
    which stops a running lazystream run) unless ``cancel_on_exit=False``.
    Raises ``TypeError`` for a future that is not one, or a single queue name instead of
    a list.
    """
    follower = _Follower(future, queues, sid)
    try:
        while not follower.done:
            yield from follower.step(None)
    finally:
        if cancel_on_exit:
            follower.leave()


async def afollow(future: concurrent.futures.Future, queues: Iterable[str | FileSystemQueue] = (DEFAULT_QUEUE,),
                  *, sid: str | None = None, cancel_on_exit: bool = True) -> AsyncIterator[tuple[str, list[Any]]]:
    """The async form of ``follow``: ``async for name, items in lazystream.afollow(future)``."""
    follower = _Follower(future, queues, sid)
    try:
        while not follower.done:
            for item in await follower.astep(_STEP):
                yield item
    finally:
        if cancel_on_exit:
            follower.leave()


async def atail(sid: str | None = None, after: int = 0, *, timeout: float | None = None,
                queues: tuple[str, ...] | None = None) -> AsyncIterator[Event]:
    """The async form of ``lazystream.tail``: the same events, the same errors."""
    reader = TailReader(sid, after, timeout=timeout, queues=queues)
    while not reader.done:
        for event in await reader.astep(_STEP):
            yield event
