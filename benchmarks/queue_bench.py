"""Queue benchmark: FileSystemQueue (SQLite) against baselines measured in the same run.

(a) flood: tokens/s from a producer thread to a consumer, against ``queue.Queue`` and a
    LazyLLM-style queue (new connection, file lock and default-journal commit per token);
(b) paced: enqueue-to-dequeue latency at 200 tokens/s;
(c) idle: consumer CPU seconds while blocked with nothing to read;
(d) concurrent: 64 sessions x 5,000 tokens — throughput and lost/duplicated/misrouted;
(e) overhead: ModuleBase call cost without and with ``return_trace``.

Run: ``make bench`` (or ``python benchmarks/queue_bench.py [--quick]``).
"""
from __future__ import annotations

import os
import queue as stdqueue
import sqlite3
import sys
import tempfile
import threading
import time

os.environ.setdefault("LAZYSTREAM_HOME", tempfile.mkdtemp(prefix="lazystream-bench-"))

import filelock  # noqa: E402

import lazystream  # noqa: E402
from lazystream import FileSystemQueue, ModuleBase, session  # noqa: E402

QUICK = "--quick" in sys.argv
FLOOD = 20_000 if QUICK else 100_000
LAZY_TOKENS = 300 if QUICK else 2_000
PACED_SECONDS = 1.0 if QUICK else 5.0
SESSIONS, PER_SESSION = (16, 1_000) if QUICK else (64, 5_000)


def flood_ours(n: int) -> float:
    q = FileSystemQueue.get_instance("bench_flood")
    with session() as sid:
        start = time.perf_counter()

        def produce():
            for _ in range(n):
                q.enqueue("tok", sid=sid)

        t = threading.Thread(target=produce)
        t.start()
        got = 0
        while got < n:
            got += len(q.get(timeout=30, sid=sid))
        t.join()
        return n / (time.perf_counter() - start)


def flood_queue(n: int) -> float:
    q: stdqueue.Queue = stdqueue.Queue()
    start = time.perf_counter()

    def produce():
        for _ in range(n):
            q.put("tok")

    t = threading.Thread(target=produce)
    t.start()
    for _ in range(n):
        q.get()
    t.join()
    return n / (time.perf_counter() - start)


class LazyLLMStyleQueue:
    """What LazyLLM 1.x does per token: a new connection, a file lock, a full-journal commit."""

    def __init__(self, path: str) -> None:
        self.path, self.lock = path, filelock.FileLock(path + ".lock")
        with sqlite3.connect(path) as c:
            c.execute("CREATE TABLE IF NOT EXISTS q (id INTEGER PRIMARY KEY AUTOINCREMENT, sid TEXT, v TEXT)")

    def enqueue(self, sid: str, v: str) -> None:
        with self.lock, sqlite3.connect(self.path) as c:
            c.execute("INSERT INTO q (sid, v) VALUES (?, ?)", (sid, v))

    def dequeue(self, sid: str) -> list[str]:
        with self.lock, sqlite3.connect(self.path) as c:
            rows = c.execute("SELECT id, v FROM q WHERE sid = ? ORDER BY id", (sid,)).fetchall()
            if rows:
                c.execute("DELETE FROM q WHERE sid = ? AND id <= ?", (sid, rows[-1][0]))
        return [v for _, v in rows]


def flood_lazyllm(n: int) -> float:
    q = LazyLLMStyleQueue(os.path.join(tempfile.mkdtemp(), "lazyllm.db"))
    start = time.perf_counter()
    t = threading.Thread(target=lambda: [q.enqueue("s", "tok") for _ in range(n)])
    t.start()
    got = 0
    while got < n:
        got += len(q.dequeue("s"))
    t.join()
    return n / (time.perf_counter() - start)


def _paced_producer(rate: float, n: int, put) -> threading.Thread:
    """Start a thread that calls ``put(send_time)`` ``n`` times at ``rate`` per second."""
    def produce():
        nxt = time.perf_counter()
        for _ in range(n):
            nxt += 1 / rate
            while (d := nxt - time.perf_counter()) > 0:
                time.sleep(d)
            put(time.perf_counter())

    t = threading.Thread(target=produce)
    t.start()
    return t


def paced_ours(rate: float, seconds: float) -> list[float]:
    q = FileSystemQueue.get_instance("bench_paced")
    n = int(rate * seconds)
    lat: list[float] = []
    with session() as sid:
        t = _paced_producer(rate, n, lambda sent: q.enqueue(sent, sid=sid))
        while len(lat) < n:
            for sent in q.get(timeout=30, sid=sid):
                lat.append(time.perf_counter() - sent)
        t.join()
    return lat


def paced_queue(rate: float, seconds: float) -> list[float]:
    q: stdqueue.Queue = stdqueue.Queue()
    n = int(rate * seconds)
    t = _paced_producer(rate, n, q.put)
    lat = []
    for _ in range(n):
        sent = q.get()
        lat.append(time.perf_counter() - sent)
    t.join()
    return lat


def idle_cpu(seconds: float) -> float:
    box = {}

    def consume():
        c0 = time.thread_time()
        FileSystemQueue.get_instance("bench_idle").get(timeout=seconds)
        box["cpu"] = time.thread_time() - c0

    t = threading.Thread(target=consume)
    t.start()
    t.join()
    return box["cpu"]


def concurrent(sessions: int, per: int) -> tuple[float, int, int, int]:
    q = FileSystemQueue.get_instance("bench_conc")
    got: dict[int, list] = {}
    sids = [f"conc-{i}-{time.monotonic_ns()}" for i in range(sessions)]

    def producer(i: int) -> None:
        for k in range(per):
            q.enqueue([i, k], sid=sids[i])

    def consumer(i: int) -> None:
        items: list = []
        deadline = time.monotonic() + 120
        while len(items) < per and time.monotonic() < deadline:
            items += q.get(timeout=1, sid=sids[i])
        items += q.dequeue(sid=sids[i])   # anything extra would be a duplicate
        got[i] = items

    threads = [threading.Thread(target=consumer, args=(i,)) for i in range(sessions)]
    threads += [threading.Thread(target=producer, args=(i,)) for i in range(sessions)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    lost = dup = misrouted = 0
    for i in range(sessions):
        mine = [k for s, k in got[i] if s == i]
        misrouted += sum(1 for s, _ in got[i] if s != i)
        dup += len(mine) - len(set(mine))
        lost += per - len(set(mine))
        assert mine == sorted(mine), "reordered"
    return sessions * per / elapsed, lost, dup, misrouted


class Plain(ModuleBase):
    def forward(self, x):
        return x


def overhead() -> tuple[float, float, float]:
    n = 20_000 if QUICK else 100_000

    def per_call(fn) -> float:
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            for i in range(n):
                fn(i)
            best = min(best, (time.perf_counter() - start) / n)
        return best * 1e6

    def func(x):
        return x

    base = per_call(func)
    plain = per_call(Plain()) - base
    with session():
        traced = per_call(Plain(return_trace=True)) - base
    return base, plain, traced


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


def main() -> None:
    rows = []
    qq = flood_queue(FLOOD)
    ours = flood_ours(FLOOD)
    lazy = flood_lazyllm(LAZY_TOKENS)
    rows.append(("(a) flood, queue.Queue", f"{qq:,.0f} tok/s", "baseline"))
    rows.append(("(a) flood, LazyLLM-style SQLite", f"{lazy:,.0f} tok/s", f"{LAZY_TOKENS:,} tokens"))
    rows.append(("(a) flood, FileSystemQueue (sqlite)", f"{ours:,.0f} tok/s",
                 f"{ours / qq:.2f}x queue.Queue, {ours / lazy:,.0f}x LazyLLM-style (target >=0.2x, >=50x)"))
    lat_q = paced_queue(200, PACED_SECONDS)
    lat = paced_ours(200, PACED_SECONDS)
    rows.append(("(b) paced 200 tok/s, queue.Queue", f"p50 {pct(lat_q, 50) * 1e3:.3f} ms",
                 f"p99 {pct(lat_q, 99) * 1e3:.3f} ms"))
    rows.append(("(b) paced 200 tok/s, FileSystemQueue", f"p50 {pct(lat, 50) * 1e3:.3f} ms",
                 f"p99 {pct(lat, 99) * 1e3:.3f} ms (target p50 <=0.2, p99 <=2)"))
    cpu = idle_cpu(2.0)
    rows.append(("(c) idle consumer, 2 s blocked", f"{cpu:.4f} CPU-s", "target <=0.01"))
    tput, lost, dup, mis = concurrent(SESSIONS, PER_SESSION)
    rows.append((f"(d) concurrent {SESSIONS} sessions x {PER_SESSION:,}", f"{tput:,.0f} tok/s",
                 f"lost {lost}, duplicated {dup}, misrouted {mis} (target 0/0/0)"))
    base, plain, traced = overhead()
    rows.append(("(e) ModuleBase overhead, no trace", f"{plain:.2f} us/call",
                 f"plain function {base:.2f} us (target <=10)"))
    rows.append(("(e) ModuleBase overhead, return_trace", f"{traced:.2f} us/call", "target <=50"))
    w = max(len(r[0]) for r in rows)
    print(f"\nqueue benchmark{' (quick)' if QUICK else ''}, python {sys.version.split()[0]}, {os.cpu_count()} cores")
    print(f"| {'measure'.ljust(w)} | result | notes |")
    print(f"|{'-' * (w + 2)}|---|---|")
    for name, value, note in rows:
        print(f"| {name.ljust(w)} | {value} | {note} |")
    lazystream.queue.backend().close()


if __name__ == "__main__":
    main()
