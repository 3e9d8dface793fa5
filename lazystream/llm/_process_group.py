"""Process groups: is one still alive, and the watchdog that stops one when its owner dies.

Stdlib only and importable without lazystream: the watchdog runs this file in a bare
interpreter (``python -I _process_group.py TERM_GRACE KILL_GRACE``), in its own session so
that signals to the owner's group or terminal do not reach it. Its stdin is a pipe whose
write end only the owner holds: the first line is the process group to guard; end of file
means the owner is gone, however it died, and the watchdog then stops the group as
``ProcessDeployment.stop()`` does. It exits on its own once the group has ended.
"""
from __future__ import annotations

import os
import select
import signal
import sys
import time


def alive(pgid: int) -> bool:
    """True while process group ``pgid`` has a member that is not a zombie.

    An exited process stays a zombie until its parent reaps it, and an init that never reaps
    (some containers) keeps orphaned zombies forever; they cannot run, so they do not count.
    """
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if not os.path.isdir("/proc"):
        return True   # no procfs (not Linux): a zombie cannot be told from a live process
    # The leader first (one file); the whole process table only once the leader has ended.
    if _is_live_member(f"/proc/{pgid}/stat", pgid):
        return True
    return any(_is_live_member(f"/proc/{name}/stat", pgid)
               for name in os.listdir("/proc") if name.isdigit())


def _is_live_member(stat_path: str, pgid: int) -> bool:
    try:
        with open(stat_path, "rb") as f:
            # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
            state, _ppid, pgrp = f.read().rsplit(b")", 1)[1].split()[:3]
    except OSError:
        return False   # it exited while we looked
    return int(pgrp) == pgid and state not in (b"Z", b"X")


def _watch(term_grace: float, kill_grace: float) -> None:
    """The watchdog: wait for the owner to go (EOF on stdin), then stop the group."""
    data = b""
    while b"\n" not in data:
        chunk = os.read(0, 64)
        if not chunk:
            return
        data += chunk
    pgid = int(data.split(b"\n", 1)[0])
    while True:
        if select.select([0], [], [], 1.0)[0]:
            if not os.read(0, 64):
                break
        elif not alive(pgid):
            return
    for sig, grace in ((signal.SIGTERM, term_grace), (signal.SIGKILL, kill_grace)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while alive(pgid):
            if time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        else:
            return


if __name__ == "__main__":
    _watch(float(sys.argv[1]), float(sys.argv[2]))
