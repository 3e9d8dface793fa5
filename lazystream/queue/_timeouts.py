"""Timeouts of coroutines waiting on the hub: one timer per event loop, not one per wait.

A coroutine awaiting ``aget`` (``afollow``, ``atail``, the SSE server) with a timeout is
nearly always woken by data first. ``loop.call_later`` for each wait costs a
``TimerHandle`` with a copy of the context, a heap push ordered by Python comparisons and
a cancel: ~3 µs a wait on the project's VM, a fifth of an ``aget`` reader's cost per
token, and more objects for the cyclic GC to promote. Here each loop keeps one list of
``(deadline, future)``: a wait appends to it, and a timer at the earliest deadline
settles the futures that are due and drops those already woken.

Everything here runs on the loop's own thread (a wait registers from a coroutine, a
sweep is a loop callback), so the per-loop state needs no lock.
"""
from __future__ import annotations

import heapq
import weakref
from typing import Any

__all__ = ["add_timeout"]

_MIN_PRUNE = 256   # entries before the first pass that drops woken futures


class _Deadlines:
    """The pending timeouts of one loop."""

    __slots__ = ("__weakref__", "entries", "loop", "prune_at", "timers")

    def __init__(self, loop: Any) -> None:
        self.loop = weakref.ref(loop)   # (weak: the loop's table must not keep it alive)
        self.entries: list[tuple[float, weakref.ref]] = []
        self.timers: list[float] = []   # when the timers set and not fired yet fire (a heap)
        self.prune_at = _MIN_PRUNE

    def add(self, loop: Any, deadline: float, future: Any) -> None:
        self.entries.append((deadline, weakref.ref(future)))
        if not self.timers or deadline < self.timers[0]:
            self._set(loop, deadline)
        elif len(self.entries) >= self.prune_at:
            self.entries = [e for e in self.entries if _waiting(e[1])]
            self.prune_at = max(_MIN_PRUNE, 2 * len(self.entries))

    def _set(self, loop: Any, when: float) -> None:
        heapq.heappush(self.timers, when)
        loop.call_at(when, self._sweep, when)

    def _sweep(self, fired: float) -> None:
        """Settle the futures whose deadline has come; keep the others' timer set."""
        loop = self.loop()
        if loop is None:
            return
        while self.timers and self.timers[0] <= fired:
            heapq.heappop(self.timers)
        now = loop.time()
        kept, soonest = [], float("inf")
        for deadline, ref in self.entries:
            future = ref()
            if future is None or future.done():
                continue
            if deadline <= now:
                future.set_result(None)   # the wait is over: its coroutine re-checks and returns
            else:
                kept.append((deadline, ref))
                soonest = min(soonest, deadline)
        self.entries = kept
        self.prune_at = max(_MIN_PRUNE, 2 * len(kept))
        if kept and (not self.timers or soonest < self.timers[0]):
            self._set(loop, soonest)


def _waiting(ref: weakref.ref) -> bool:
    future = ref()
    return future is not None and not future.done()


# loop -> its deadlines; and the last one used, for the common case of one loop
_by_loop: weakref.WeakKeyDictionary[Any, _Deadlines] = weakref.WeakKeyDictionary()
_last: tuple[weakref.ref, _Deadlines] | None = None


def add_timeout(loop: Any, timeout: float, future: Any) -> bool:
    """Settle ``future`` (``set_result(None)``) once ``timeout`` s have passed on ``loop``,
    unless it is done by then. Call on the loop's thread. False when this loop cannot be
    tracked here (it takes no weak reference): then use ``loop.call_later``."""
    global _last
    last = _last
    if last is not None and last[0]() is loop:
        deadlines = last[1]
    else:
        try:
            known = _by_loop.get(loop)
            if known is None:
                known = _by_loop[loop] = _Deadlines(loop)
            deadlines = known
            _last = (weakref.ref(loop), deadlines)
        except TypeError:
            return False
    deadlines.add(loop, loop.time() + timeout, future)
    return True
