"""One reader thread per watched session, shared by every HTTP client of that session.

The store's blocking reads (``read_session(..., timeout=)``) park a thread; an asyncio
server cannot give each of 200 clients a thread. A ``_Watch`` reads its session once for
all of them and keeps the newest ``_RECENT`` (up to twice that) events in memory; a client whose cursor is
inside that window is served from memory, one further behind (a slow or resuming client)
reads its next batch from the store by cursor. So a slow client costs no memory here:
the store is its buffer, and what is in flight to it is bounded by the transport's
write buffer (see ``_stream``).

The thread also learns what a blocked read cannot: that the session ended, or that its
producing process died. It stops a little after its last client leaves.
"""
from __future__ import annotations

import asyncio
import bisect
import threading
from collections.abc import Callable
from typing import Any

from ..events import TERMINAL, Event
from ..queue import add_timeout, backend, producer_gone, read_session

__all__ = ["Hub", "Watch"]

_RECENT = 2048          # events kept in memory per watched session
_BATCH = 500            # events per store read
_LIVENESS_EVERY = 0.5   # seconds between liveness checks while the session is quiet


class Watch:
    """The shared reader of one session: recent events, end state, async wake-ups."""

    def __init__(self, hub: Hub, sid: str) -> None:
        self.sid = sid
        self.clients = 0
        self.recent: list[Event] = []   # between _RECENT and 2 * _RECENT events, oldest first
        self._seqs: list[int] = []       # their seqs, for bisect
        self._wire: dict[int, bytes] = {}   # seq -> the event's SSE message, encoded once for all clients
        self.base = 0          # every event with base < seq <= last is in ``recent``
        self.last = 0
        self.ended = False     # the terminal event was read
        self.gone: str | None = None   # why the producer will never end the session
        self.failure: BaseException | None = None
        self._hub = hub
        self._lock = threading.Lock()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, after: int) -> None:
        self.base = self.last = after
        self._thread = threading.Thread(target=self._loop, name=f"lazystream-watch {self.sid[:16]}", daemon=True)
        self._thread.start()

    # --- the reader thread --------------------------------------------------------------
    def _loop(self) -> None:
        try:
            while not self._stop.is_set() and not self.ended:
                events = read_session(self.sid, self.last, timeout=_LIVENESS_EVERY, limit=_BATCH)
                if events:
                    with self._lock:
                        for event in events:
                            self.recent.append(event)
                            self._seqs.append(event.seq)
                            self.last = event.seq
                            if event.kind == TERMINAL:
                                self.ended = True
                        if len(self.recent) > 2 * _RECENT:   # trim in halves: amortised O(1) per event
                            cut = len(self.recent) - _RECENT
                            self.base = self._seqs[cut - 1]
                            del self.recent[:cut], self._seqs[:cut]
                            self._wire = {q: b for q, b in self._wire.items() if q > self.base}
                    self._wake()
                    continue
                if self._hub.release_if_idle(self):
                    return
                gone = producer_gone(self.sid)
                if gone is not None and not read_session(self.sid, self.last, limit=1):
                    self.gone = gone
                    self._wake()
                    return
                info = backend().session_info(self.sid)
                if info is not None and info["ended"] is not None and not read_session(self.sid, self.last, limit=1):
                    self.ended = True   # its end event was at or before where we started
                    self._wake()
                    return
                self._wake()   # periodic: clients check their own timers (keepalive, timeout)
        except BaseException as e:  # noqa: BLE001 - the clients report it, the thread ends
            self.failure = e
            self._wake()
        finally:
            self._hub.forget(self)

    def _wake(self) -> None:
        with self._lock:
            waiters, self._waiters = self._waiters, []
        by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
        for loop, future in waiters:
            by_loop.setdefault(loop, []).append(future)
        for loop, futures in by_loop.items():   # one wake-up of each loop, not one per client
            try:
                loop.call_soon_threadsafe(_resolve_all, futures)
            except RuntimeError:
                pass   # that loop is closed: its clients are gone

    def stop(self) -> None:
        self._stop.set()

    # --- what clients call (in the event loop) ------------------------------------------
    def buffered_after(self, after: int) -> list[Event] | None:
        """Return the buffered events after ``after`` (maybe ``[]``), or ``None`` if the
        cursor is behind the window and the client must read the store."""
        with self._lock:
            if after < self.base:
                return None
            if after >= self.last:
                return []
            i = bisect.bisect_right(self._seqs, after)
            return self.recent[i:i + _BATCH]

    def encoded(self, event: Event, encode: Callable[[Event], bytes]) -> bytes:
        """``encode(event)``, computed once per event of the window however many clients send it."""
        wire = self._wire.get(event.seq)
        if wire is None:
            wire = encode(event)
            if event.seq > self.base and event.sid == self.sid:
                self._wire[event.seq] = wire
        return wire

    async def changed(self, timeout: float) -> None:
        """Wait until the reader thread reports something, or ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            self._waiters.append((loop, future))
        # The loop's shared timeout timer (``queue.add_timeout``), not asyncio.wait_for (a
        # task and callbacks per wait) nor a call_later per wait.
        timer = None if add_timeout(loop, timeout, future) else loop.call_later(timeout, _resolve_all, [future])
        try:
            await future
        finally:
            if timer is not None:
                timer.cancel()

    @property
    def finished(self) -> bool:
        """True once the reader thread will add nothing more."""
        return self.ended or self.gone is not None or self.failure is not None


def _resolve_all(futures: list[asyncio.Future[None]]) -> None:
    for future in futures:
        if not future.done():
            future.set_result(None)


class Hub:
    """The watched sessions of one app; ``subscribe``/``unsubscribe`` count the clients."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._watches: dict[str, Watch] = {}

    def subscribe(self, sid: str, after: int) -> Watch:
        """Return the session's watch (starting its reader at ``after`` if new)."""
        with self._lock:
            watch = self._watches.get(sid)
            if watch is None or watch.failure is not None:
                watch = self._watches[sid] = Watch(self, sid)
                watch.clients += 1
                watch.start(after)
                return watch
            watch.clients += 1
            return watch

    def unsubscribe(self, watch: Watch) -> None:
        with self._lock:
            watch.clients -= 1
            if watch.clients <= 0 and watch.finished and self._watches.get(watch.sid) is watch:
                del self._watches[watch.sid]

    def release_if_idle(self, watch: Watch) -> bool:
        """Called by a reader thread while quiet: drop the watch if it has no client."""
        with self._lock:
            if watch.clients <= 0 and self._watches.get(watch.sid) is watch:
                del self._watches[watch.sid]
                return True
            return False

    def forget(self, watch: Watch) -> None:
        with self._lock:
            if self._watches.get(watch.sid) is watch and watch.clients <= 0:
                del self._watches[watch.sid]

    def close(self) -> None:
        with self._lock:
            watches = list(self._watches.values())
            self._watches.clear()
        for watch in watches:
            watch.stop()

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"watched_sessions": len(self._watches),
                    "clients": sum(w.clients for w in self._watches.values())}
