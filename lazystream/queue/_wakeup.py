"""Cross-process wake-ups for the SQLite backend, so blocked readers never poll.

A process that has blocked readers binds an abstract Unix datagram socket and leaves a
marker file named after it in ``<db>.wake/``. After each commit a writer sends one byte to
every other process's socket; a listener thread there turns it into an in-process notify.
Markers of dead processes are removed by the first writer whose send is refused.
Abstract sockets are Linux-only: elsewhere ``Wakeup.available`` is False and readers fall
back to checking ``PRAGMA data_version`` every few milliseconds.
"""
from __future__ import annotations

import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable

__all__ = ["Wakeup"]

_PREFIX = "\0lazystream-wake-"
# How far a directory's mtime may lag the real time of a change: the kernel stamps it
# with a coarse clock (one tick, 1–10 ms); 50 ms is well beyond that.
_MTIME_SLACK = 50_000_000
_DRAIN = 10_000   # pings read before one call of on_ping, at most


class Wakeup:
    """Sends and receives "something was committed" pings between processes."""

    available = sys.platform.startswith("linux")

    def __init__(self, folder: str, on_ping: Callable[[], None]) -> None:
        self.folder = folder
        self._on_ping = on_ping
        self._token = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self._lock = threading.Lock()
        self._listening = False
        self._recv: socket.socket | None = None
        self._send: socket.socket | None = None
        self._cache: tuple[int, int, list[str]] | None = None   # (folder mtime, listed at, peers)

    def listen(self) -> bool:
        """Start receiving pings; return True the first time (callers then re-check)."""
        if self._listening:
            return False
        with self._lock:
            if self._listening:
                return False
            os.makedirs(self.folder, mode=0o700, exist_ok=True)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.bind(_PREFIX + self._token)
            self._recv = sock
            with open(os.path.join(self.folder, self._token), "w"):
                pass
            threading.Thread(target=self._loop, name="lazystream-wakeup", daemon=True).start()
            self._listening = True
            return True

    def _loop(self) -> None:
        sock = self._recv
        while sock is not None:
            try:
                sock.recv(64)
                # Every ping that came meanwhile is answered by the one call below: under
                # load, one look at the store per burst of commits, not per commit.
                for _ in range(_DRAIN):
                    sock.recv(64, socket.MSG_DONTWAIT)
            except BlockingIOError:
                pass
            except OSError:
                return
            self._on_ping()

    def _peers(self) -> list[str]:
        """The other listening processes, listed afresh only when the folder changed.

        A cached listing is trusted while the folder's mtime is what it was and older
        than the listing by more than the kernel's coarse clock tick
        (``_MTIME_SLACK``): a marker made after the listing would then have moved the
        mtime. (Within that slack a new marker may not have moved it yet, so the folder
        is listed again.) A ``stat`` costs a few µs, a listing several times that.
        """
        try:
            mtime = os.stat(self.folder).st_mtime_ns
        except FileNotFoundError:
            return []
        cached = self._cache
        if cached is not None and cached[0] == mtime and cached[1] - mtime > _MTIME_SLACK:
            return cached[2]
        listed_at = time.time_ns()
        try:
            peers = [n for n in os.listdir(self.folder) if n != self._token]
        except FileNotFoundError:
            return []
        self._cache = (mtime, listed_at, peers)
        return peers

    def has_peers(self) -> bool:
        """Return True if another process listens (may be reading this store)."""
        return bool(self._peers())

    def ping_peers(self) -> None:
        """Tell every other listening process that something was committed.

        Call it *after* the commit. A reader that registered after the listing re-reads
        after registering, so it sees the commit; the listing is fresh enough for that
        (see ``_peers``).
        """
        peers = self._peers()
        if not peers:
            return
        if self._send is None:
            self._send = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._send.setblocking(False)
        for name in peers:
            try:
                self._send.sendto(b"!", _PREFIX + name)
            except BlockingIOError:
                pass            # its buffer is full of pings already: it will wake
            except (ConnectionRefusedError, FileNotFoundError):
                try:            # that process is gone
                    os.remove(os.path.join(self.folder, name))
                except FileNotFoundError:
                    pass
                self._cache = None

    def close(self) -> None:
        with self._lock:
            if self._recv is not None:
                try:
                    os.remove(os.path.join(self.folder, self._token))
                except FileNotFoundError:
                    pass
                sock, self._recv = self._recv, None
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
            self._listening = False
