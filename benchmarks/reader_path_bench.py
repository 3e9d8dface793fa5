"""A reader process's work per token, against a plain asyncio fan-out in the same run.

A process follows 500 sessions with a coroutine each (``await q.aget(...)``, as an
async web server reads its clients' sessions). Another process's store of one event per
session arrives as the Redis backend's watch thread hands it to the hub: here a thread
plays those messages, in the backend's own format, into the hub directly, 10 a second,
so no producer process and no Redis round trip share the measurement. Reported: the
process's CPU per delivered token and the latency from message to coroutine.

Baseline: the same fan-out with ``asyncio.Queue``: the thread hands each tick to the
loop with one ``call_soon_threadsafe``, which puts one item in each session's queue;
each coroutine awaits ``get()``. That is the floor of one coroutine per session.

Uses the hub's and the backend's private entry points (``_heard``, ``_external``): what
is measured is exactly the path between them. Starts its own ``redis-server`` (the
hub's cursors and claims live there) on a free loopback port, as ``redis_bench`` does.

Run: ``make bench`` (or ``python benchmarks/reader_path_bench.py [--quick]``).
"""
from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import threading
import time

from redis_bench import print_table, start_redis   # (this directory: also sets a LAZYSTREAM_HOME of its own)

import lazystream.queue as lq
from lazystream import FileSystemQueue
from lazystream.queue._backend import encode

QUICK = "--quick" in sys.argv
SESSIONS = 500
TICKS = 30 if QUICK else 100
PERIOD = 0.1   # s between ticks: a reader that keeps up (one token per wake-up)


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))] if xs else float("nan")


def paced(ticks: int, each) -> threading.Thread:
    def run() -> None:
        nxt = time.perf_counter()
        for k in range(ticks):
            nxt += PERIOD
            while (d := nxt - time.perf_counter()) > 0:
                time.sleep(d)   # pacing the ticks
            each(k)
    return threading.Thread(target=run)


async def timed(feed, readers: list) -> float:
    """Feed ``TICKS`` ticks from a thread while the ``readers`` (coroutines) read them;
    return this process's CPU seconds meanwhile."""
    feeder = paced(TICKS, feed)
    c0 = time.process_time()
    feeder.start()
    await asyncio.gather(*readers)
    cpu = time.process_time() - c0
    feeder.join()
    return cpu


def ours() -> tuple[float, list[float]]:
    q = FileSystemQueue.get_instance("bench_reader_path")
    sids = [f"s{i}" for i in range(SESSIONS)]
    for sid in sids:
        q.size(sid=sid)   # claimed and cached, as a reader that follows them
    hub = lq.backend()
    hub.wait((0, 0, 0), 0, ("", ""))   # listening to other processes from now on
    # Another writer's messages, as its store script publishes them (see _redis._WRITE).
    messages = ["\0".join(["elsewhere:1:1", *(part for sid in sids for part in (
        sid, str(k + 1), "1", "\x1f".join(["bench_reader_path", "item", "[]", encode(k), "1.0"])))])
        for k in range(TICKS)]
    fed: dict[int, float] = {}

    def feed(k: int) -> None:
        fed[k] = time.perf_counter()
        named: dict = {}
        hub.backend._heard(messages[k], named)
        hub._external(named, {sid: a for sid, a in named.items() if a is not None})

    lat: list[float] = []

    async def read(sid: str) -> None:
        got = 0
        while got < TICKS:
            items = await q.aget(timeout=10, sid=sid)
            now = time.perf_counter()
            lat.extend(now - fed[k] for k in items)
            got += len(items)

    cpu = asyncio.run(timed(feed, [read(sid) for sid in sids]))
    return cpu / len(lat), lat


def baseline() -> tuple[float, list[float]]:
    fed: dict[int, float] = {}
    lat: list[float] = []

    async def main() -> float:
        loop = asyncio.get_running_loop()
        queues = [asyncio.Queue() for _ in range(SESSIONS)]

        def put_all(k: int) -> None:
            for q in queues:
                q.put_nowait(k)

        def feed(k: int) -> None:
            fed[k] = time.perf_counter()
            loop.call_soon_threadsafe(put_all, k)

        async def read(q: asyncio.Queue) -> None:
            for _ in range(TICKS):
                k = await q.get()
                lat.append(time.perf_counter() - fed[k])

        return await timed(feed, [read(q) for q in queues])

    cpu = asyncio.run(main())
    return cpu / len(lat), lat


def main() -> None:
    base_cpu, base_lat = baseline()
    directory = tempfile.mkdtemp(prefix="lazystream-bench-redis-")
    server, port = start_redis(directory)
    os.environ["LAZYSTREAM_QUEUE"] = f"redis://127.0.0.1:{port}/0"
    lq.reset()
    try:
        cpu, lat = ours()
    finally:
        lq.reset()
        server.terminate()
        server.wait(10)
        shutil.rmtree(directory, ignore_errors=True)
    rows = [
        ("asyncio.Queue fan-out, a coroutine per session", f"{base_cpu * 1e6:.1f} us/token",
         f"message to coroutine p50 {pct(base_lat, 50) * 1e3:.2f}, p99 {pct(base_lat, 99) * 1e3:.2f} ms (baseline)"),
        ("hub: another process's store to aget, a coroutine per session", f"{cpu * 1e6:.1f} us/token",
         f"{cpu / base_cpu:.2f}x the baseline's CPU; message to coroutine p50 {pct(lat, 50) * 1e3:.2f}, "
         f"p99 {pct(lat, 99) * 1e3:.2f} ms"),
    ]
    print_table(f"reader path benchmark{' (quick)' if QUICK else ''}: {SESSIONS} sessions, one event each every "
                f"{PERIOD:g} s, {TICKS} ticks; python {sys.version.split()[0]}, {os.cpu_count()} cores",
                "CPU per token", rows)


if __name__ == "__main__":
    main()
