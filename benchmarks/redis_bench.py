"""Redis backend benchmark, against the SQLite backend and bare redis-py, in the same run.

Starts its own ``redis-server`` on a free loopback port (no persistence, like a cache
node; SQLite runs WAL with ``synchronous=NORMAL``, which does not fsync per commit either).

(a) flood, one session: tokens/s from a producer thread to a reader thread — lazystream on
    Redis and on SQLite, and a bare redis-py loop (pipelined ``XADD`` batches, ``XREAD BLOCK``);
    (a') the same with the reader in another process;
(b) one session at 200 tok/s, the reader in another process: latency p50/p99;
(c) many sessions x 50 tok/s, producers in 2 processes, readers in 2 processes:
    delivered, lost, duplicated, latency p99;
(d) an idle reader blocked for 2 s: CPU seconds of its whole process;
(e) Redis memory per 1M 5-byte tokens (and the SQLite file per 1M, for comparison).

Run: ``make bench`` (or ``python benchmarks/redis_bench.py [--quick]``).
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

os.environ.setdefault("LAZYSTREAM_HOME", tempfile.mkdtemp(prefix="lazystream-bench-"))

import redis  # noqa: E402

import lazystream.queue as lq  # noqa: E402
from lazystream import FileSystemQueue, session  # noqa: E402

QUICK = "--quick" in sys.argv
FLOOD = 20_000 if QUICK else 100_000
PACED_SECONDS = 2.0 if QUICK else 5.0
MANY, MANY_SECONDS = (200, 3.0) if QUICK else (1000, 10.0)
MEMORY_TOKENS = 100_000 if QUICK else 1_000_000


# --- setup ------------------------------------------------------------------------------------

def start_redis(directory: str) -> tuple[subprocess.Popen, int]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis_bench: redis-server not found on PATH (apt-get install redis-server)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", directory,
                             "--save", "", "--appendonly", "no", "--loglevel", "warning"],
                            stdout=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            return proc, port
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)   # waiting for the child to listen


def use(kind: str, url: str) -> dict[str, str]:
    """Point this process (and children given the returned env) at a backend, fresh."""
    env = {"LAZYSTREAM_QUEUE": url if kind == "redis" else "sqlite",
           "LAZYSTREAM_REDIS_PREFIX": f"bench{time.monotonic_ns()}",
           "LAZYSTREAM_HOME": tempfile.mkdtemp(prefix=f"lazystream-bench-{kind}-")}
    os.environ.update(env)
    lq.reset()
    return env


def child(code: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code], env=dict(os.environ, **env), text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))] if xs else float("nan")


# --- (a) flood --------------------------------------------------------------------------------

def flood_ours(n: int) -> float:
    q = FileSystemQueue.get_instance("bench_flood")
    with session() as sid:
        start = time.perf_counter()
        t = threading.Thread(target=lambda: [q.enqueue("tok", sid=sid) for _ in range(n)])
        t.start()
        got = 0
        while got < n:
            got += len(q.get(timeout=30, sid=sid))
        t.join()
        return n / (time.perf_counter() - start)


def flood_bare(port: int, n: int, batch: int = 256) -> float:
    """The floor: redis-py alone, pipelined XADD batches to one stream, XREAD BLOCK reader."""
    key = f"bare:{time.monotonic_ns()}"
    producer_client, reader_client = redis.Redis(port=port), redis.Redis(port=port)

    def produce():
        for i in range(0, n, batch):
            pipe = producer_client.pipeline(transaction=False)
            for _ in range(min(batch, n - i)):
                pipe.xadd(key, {"d": "tok"})
            pipe.execute()

    start = time.perf_counter()
    t = threading.Thread(target=produce)
    t.start()
    got, last = 0, "0-0"
    while got < n:
        for _, entries in reader_client.xread({key: last}, count=10_000, block=30_000):
            got += len(entries)
            last = entries[-1][0]
    t.join()
    elapsed = time.perf_counter() - start
    producer_client.delete(key)
    return n / elapsed


_FLOOD_READER = """
import sys, time, lazystream
q = lazystream.FileSystemQueue.get_instance("bench_flood_x")
n, got = int(sys.argv[1]), 0
q.size(sid=sys.argv[2])          # connect before saying ready
print("ready", flush=True)
while got < n:
    got += len(q.get(timeout=30, sid=sys.argv[2]))
print(time.time(), flush=True)
"""


def flood_other_process(env: dict[str, str], n: int) -> float:
    """Tokens/s from a producer thread here to a reader in another process."""
    sid = f"floodx-{time.monotonic_ns()}"
    reader = subprocess.Popen([sys.executable, "-c", _FLOOD_READER, str(n), sid], env=dict(os.environ, **env),
                              text=True, stdout=subprocess.PIPE)
    assert reader.stdout.readline().strip() == "ready"
    q = FileSystemQueue.get_instance("bench_flood_x")
    start = time.time()
    for _ in range(n):
        q.enqueue("tok", sid=sid)
    out, _ = reader.communicate(timeout=120)
    return n / (float(out) - start)


def flood_bare_other_process(port: int, n: int, batch: int = 256) -> float:
    """The same with bare redis-py: pipelined XADD here, XREAD BLOCK in another process."""
    key = f"barex:{time.monotonic_ns()}"
    code = ("import sys, time, redis\n"
            "r = redis.Redis(port=int(sys.argv[1]))\n"
            "n, got, last = int(sys.argv[3]), 0, '0-0'\n"
            "r.ping(); print('ready', flush=True)\n"
            "while got < n:\n"
            "    for _, entries in r.xread({sys.argv[2]: last}, count=10000, block=30000):\n"
            "        got += len(entries); last = entries[-1][0]\n"
            "print(time.time(), flush=True)\n")
    reader = subprocess.Popen([sys.executable, "-c", code, str(port), key, str(n)], text=True,
                              stdout=subprocess.PIPE)
    assert reader.stdout.readline().strip() == "ready"
    client = redis.Redis(port=port)
    start = time.time()
    for i in range(0, n, batch):
        pipe = client.pipeline(transaction=False)
        for _ in range(min(batch, n - i)):
            pipe.xadd(key, {"d": "tok"})
        pipe.execute()
    out, _ = reader.communicate(timeout=120)
    client.delete(key)
    return n / (float(out) - start)


# --- (b) paced, reader in another process --------------------------------------------------------

_PACED_READER = """
import json, sys, time, lazystream
q = lazystream.FileSystemQueue.get_instance("bench_paced")
n, lat = int(sys.argv[1]), []
q.size(sid=sys.argv[2])          # connect before saying ready
print("ready", flush=True)
while len(lat) < n:
    for sent in q.get(timeout=30, sid=sys.argv[2]):
        lat.append(time.time() - sent)
print(json.dumps(lat), flush=True)
"""


def paced_other_process(env: dict[str, str], rate: float, seconds: float) -> list[float]:
    n, sid = int(rate * seconds), f"paced-{time.monotonic_ns()}"
    reader = subprocess.Popen([sys.executable, "-c", _PACED_READER, str(n), sid], env=dict(os.environ, **env),
                              text=True, stdout=subprocess.PIPE)
    assert reader.stdout.readline().strip() == "ready"
    q = FileSystemQueue.get_instance("bench_paced")
    nxt = time.perf_counter()
    for _ in range(n):
        nxt += 1 / rate
        while (d := nxt - time.perf_counter()) > 0:
            time.sleep(d)   # pacing the producer
        q.enqueue(time.time(), sid=sid)
    out, _ = reader.communicate(timeout=60)
    return json.loads(out)


# --- (c) many sessions across processes ----------------------------------------------------------

_MANY_PRODUCER = """
import sys, time, lazystream
first, count, rate, seconds, tag = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
q = lazystream.FileSystemQueue.get_instance("bench_many")
sids = [f"{tag}-{i}" for i in range(first, first + count)]
input()
start, cpu = time.perf_counter(), time.process_time()
for k in range(int(rate * seconds)):
    while (d := start + k / rate - time.perf_counter()) > 0:
        time.sleep(d)   # pacing: one token per session per tick
    for sid in sids:
        q.enqueue([k, time.time()], sid=sid)
lazystream.queue.backend().sync()
print("done", time.process_time() - cpu, flush=True)
"""

_MANY_READER = """
import asyncio, json, sys, threading, time, lazystream
first, count, per, tag, window, mode = (int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4],
                                        float(sys.argv[5]), sys.argv[6])
q = lazystream.FileSystemQueue.get_instance("bench_many")
results = {}

class Reading:
    # one session's reader: what it got, each item's latency, and when to stop
    # (at `per` items, or `window` s after its first)

    def __init__(self, i):
        self.got, self.lat, self.deadline = [], [], None
        results[i] = (self.got, self.lat)

    def more(self):
        return len(self.got) < per and (self.deadline is None or time.monotonic() <= self.deadline)

    def took(self, items):
        now = time.time()
        for k, sent in items:
            self.got.append(k)
            self.lat.append(now - sent)
        if self.deadline is None and self.got:
            self.deadline = time.monotonic() + window

def read(i):
    r = Reading(i)
    while r.more():
        r.took(q.get(timeout=1, sid=f"{tag}-{i}"))

async def aread(i):
    r = Reading(i)
    while r.more():
        r.took(await q.aget(timeout=1, sid=f"{tag}-{i}"))

for i in range(first, first + count):
    q.size(sid=f"{tag}-{i}")     # follow every session (claim its queue) before saying ready
cpu = time.process_time()   # (from here: the reading, not the start-up)
if mode == "threads":
    threads = [threading.Thread(target=read, args=(i,), daemon=True) for i in range(first, first + count)]
    for t in threads:
        t.start()
    print("ready", flush=True)
    for t in threads:
        t.join()
else:
    async def main():
        tasks = [asyncio.ensure_future(aread(i)) for i in range(first, first + count)]
        await asyncio.sleep(0)
        print("ready", flush=True)
        await asyncio.gather(*tasks)
    asyncio.run(main())
print(json.dumps({"results": results, "cpu": time.process_time() - cpu}), flush=True)
"""


_MANY_BARE_PRODUCER = """
import json, sys, time, redis
port, first, count, rate, seconds, tag = (int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]),
                                          float(sys.argv[5]), sys.argv[6])
r = redis.Redis(port=port)
keys = [f"{tag}:{i}" for i in range(first, first + count)]
input()
start, cpu = time.perf_counter(), time.process_time()
for k in range(int(rate * seconds)):
    while (d := start + k / rate - time.perf_counter()) > 0:
        time.sleep(d)
    pipe = r.pipeline(transaction=False)
    for key in keys:
        pipe.xadd(key, {"d": json.dumps([k, time.time()])})
    pipe.execute()
print("done", time.process_time() - cpu, flush=True)
"""

_MANY_BARE_READER = """
import json, sys, time, redis
port, first, count, per, tag = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
r = redis.Redis(port=port)
last = {f"{tag}:{i}": "0-0" for i in range(first, first + count)}
got = {key: [] for key in last}
lat = []
r.ping()
print("ready", flush=True)
cpu = time.process_time()
deadline = None
while sum(map(len, got.values())) < count * per:
    for key, entries in r.xread(last, count=10_000, block=1000) or []:
        now = time.time()
        key = key.decode()
        for eid, fields in entries:
            k, sent = json.loads(fields[b"d"])
            got[key].append(k)
            lat.append(now - sent)
        last[key] = entries[-1][0]
    if deadline is None and lat:
        deadline = time.monotonic() + float(sys.argv[6])
    if deadline is not None and time.monotonic() > deadline:
        break
print(json.dumps({"got": list(got.values()), "lat": lat, "cpu": time.process_time() - cpu}), flush=True)
"""


def many_sessions_bare(port: int, sessions: int, seconds: float, rate: float = 50.0) -> dict:
    """(c) with redis-py alone, the floor on this machine: each producer pipelines one XADD
    per session per tick; each reader multiplexes its sessions in one ``XREAD BLOCK``."""
    tag, per, half = f"manybare{time.monotonic_ns()}", int(rate * seconds), sessions // 2
    spans = [(0, half), (half, sessions - half)]
    outs, producer_cpu = _run_many(
        [[_MANY_BARE_READER, str(port), str(a), str(c), str(per), tag, str(seconds + 60)] for a, c in spans],
        [[_MANY_BARE_PRODUCER, str(port), str(a), str(c), str(rate), str(seconds), tag] for a, c in spans],
        {}, seconds)
    redis.Redis(port=port).flushdb()
    got = [ks for out in outs for ks in out["got"]]
    return _many_result(sessions, per, dict(enumerate(got)), [x for out in outs for x in out["lat"]],
                        sum(out["cpu"] for out in outs), producer_cpu)


def many_sessions(env: dict[str, str], sessions: int, seconds: float, rate: float = 50.0,
                  readers_as: str = "threads") -> dict:
    """``readers_as``: "threads" (a thread per session, ``get``) or "async" (one event loop
    per reader process, a coroutine per session awaiting ``aget``, as an async web server
    reads its clients' sessions)."""
    tag, per, half = f"many{time.monotonic_ns()}", int(rate * seconds), sessions // 2
    spans = [(0, half), (half, sessions - half)]
    outs, producer_cpu = _run_many(
        [[_MANY_READER, str(a), str(c), str(per), tag, str(seconds + 60), readers_as] for a, c in spans],
        [[_MANY_PRODUCER, str(a), str(c), str(rate), str(seconds), tag] for a, c in spans], env, seconds)
    got = {int(i): ks for out in outs for i, (ks, _) in out["results"].items()}
    lats = [x for out in outs for _, lat in out["results"].values() for x in lat]
    return _many_result(sessions, per, got, lats, sum(out["cpu"] for out in outs), producer_cpu)


def _run_many(readers: list[list[str]], producers: list[list[str]], env: dict[str, str],
              seconds: float) -> tuple[list[dict], float]:
    """Start the reader processes (each says when it is ready), then the producers at once;
    return each reader's JSON result and the producers' CPU seconds while producing."""
    full = dict(os.environ, **env)
    reading = [subprocess.Popen([sys.executable, "-c", *args], env=full, text=True, stdout=subprocess.PIPE)
               for args in readers]
    for r in reading:
        assert r.stdout.readline().strip() == "ready"
    producing = [subprocess.Popen([sys.executable, "-c", *args], env=full, text=True, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE) for args in producers]
    for p in producing:
        p.stdin.write("\n")
        p.stdin.flush()
    producer_cpu = sum(float(p.communicate(timeout=seconds + 120)[0].split()[1]) for p in producing)
    return [json.loads(r.communicate(timeout=seconds + 120)[0]) for r in reading], producer_cpu


def _many_result(sessions: int, per: int, got: dict[int, list], lats: list[float], reader_cpu: float,
                 producer_cpu: float) -> dict:
    lost = sum(per - len(set(ks)) for ks in got.values()) + per * (sessions - len(got))
    dup = sum(len(ks) - len(set(ks)) for ks in got.values())
    reordered = sum(ks != sorted(ks) for ks in got.values())
    late = sum(1 for x in lats if x > 0.1)
    delivered = sum(len(set(ks)) for ks in got.values())
    return {"sent": sessions * per, "delivered": delivered, "lost": lost,
            "dup": dup, "reordered": reordered, "p50": pct(lats, 50), "p99": pct(lats, 99),
            "within_100ms": 1 - late / max(1, len(lats)),
            "reader_us": reader_cpu / max(1, delivered) * 1e6, "producer_us": producer_cpu / (sessions * per) * 1e6}


# --- (d) idle, (e) memory --------------------------------------------------------------------------

def idle_cpu(seconds: float) -> tuple[float, float]:
    """CPU seconds of this whole process: to start reading (connect, claim the queue,
    subscribe), then blocked ``seconds`` with nothing coming."""
    q = FileSystemQueue.get_instance("bench_idle")
    c0 = time.process_time()
    q.get(timeout=0)
    c1 = time.process_time()
    q.get(timeout=seconds)
    return c1 - c0, time.process_time() - c1


def memory_per_million(port: int, n: int) -> tuple[float, float]:
    """Bytes per 5-byte token in Redis: the stream's MEMORY USAGE and INFO used_memory delta."""
    client = redis.Redis(port=port, decode_responses=True)
    before = client.info("memory")["used_memory"]
    q = FileSystemQueue.get_instance("bench_memory")
    with session() as sid:
        for _ in range(n):
            q.enqueue("abcde", sid=sid)
        lq.backend().sync()
    usage = client.memory_usage(f"{os.environ['LAZYSTREAM_REDIS_PREFIX']}:{{{sid}}}:log", samples=0)
    after = client.info("memory")["used_memory"]
    return usage / n * 1_000_000, (after - before) / n * 1_000_000


def sqlite_file_per_million(n: int) -> float:
    q = FileSystemQueue.get_instance("bench_memory")
    with session():
        for _ in range(n):
            q.enqueue("abcde")
    lq.backend().sync()
    home = os.environ["LAZYSTREAM_HOME"]
    lq.reset()
    size = sum(os.path.getsize(os.path.join(home, f)) for f in os.listdir(home) if f.startswith("queue.db"))
    return size / n * 1_000_000


def main() -> None:
    directory = tempfile.mkdtemp(prefix="lazystream-bench-redis-")
    server, port = start_redis(directory)
    url = f"redis://127.0.0.1:{port}/0"
    rows = []
    try:
        bare = flood_bare(port, FLOOD)
        use("redis", url)
        ours = flood_ours(FLOOD)
        use("sqlite", url)
        sq = flood_ours(FLOOD)
        rows.append(("(a) flood, bare redis-py XADD pipeline/XREAD", f"{bare:,.0f} tok/s", "baseline"))
        rows.append(("(a) flood, FileSystemQueue on SQLite", f"{sq:,.0f} tok/s", f"{sq / bare:.2f}x bare"))
        rows.append(("(a) flood, FileSystemQueue on Redis", f"{ours:,.0f} tok/s",
                     f"{ours / bare:.2f}x bare (target >=0.5x), {ours / sq:.2f}x SQLite; the reader is in "
                     "the producer's process (it reads the hub's cache)"))
        bare_x = flood_bare_other_process(port, FLOOD)
        sq_x = flood_other_process(use("sqlite", url), FLOOD)
        ours_x = flood_other_process(use("redis", url), FLOOD)
        rows.append(("(a') flood, reader in another process, bare redis-py", f"{bare_x:,.0f} tok/s", "baseline"))
        rows.append(("(a') flood, reader in another process, SQLite", f"{sq_x:,.0f} tok/s",
                     f"{sq_x / bare_x:.2f}x bare"))
        rows.append(("(a') flood, reader in another process, Redis", f"{ours_x:,.0f} tok/s",
                     f"{ours_x / bare_x:.2f}x bare (target >=0.5x), {ours_x / sq_x:.2f}x SQLite"))

        lat_sq = paced_other_process(use("sqlite", url), 200, PACED_SECONDS)
        env_redis = use("redis", url)
        lat_r = paced_other_process(env_redis, 200, PACED_SECONDS)
        rows.append(("(b) 200 tok/s, reader in another process, SQLite", f"p50 {pct(lat_sq, 50) * 1e3:.2f} ms",
                     f"p99 {pct(lat_sq, 99) * 1e3:.2f} ms"))
        rows.append(("(b) 200 tok/s, reader in another process, Redis", f"p50 {pct(lat_r, 50) * 1e3:.2f} ms",
                     f"p99 {pct(lat_r, 99) * 1e3:.2f} ms (target p50 <=1, p99 <=5)"))

        def many_row(label: str, m: dict) -> None:
            rows.append((f"(c) {MANY:,} sessions x 50 tok/s x {MANY_SECONDS:g} s, 2+2 processes, {label}",
                         f"{m['within_100ms'] * 100:.1f} % within 100 ms",
                         f"sent {m['sent']:,}, delivered {m['delivered']:,}, lost {m['lost']}, duplicated "
                         f"{m['dup']}, reordered {m['reordered']}, p50 {m['p50'] * 1e3:.1f} ms, "
                         f"p99 {m['p99'] * 1e3:.1f} ms (target >=95 %, 0 lost, p99 <=100 ms); CPU per token: "
                         f"readers {m['reader_us']:.0f} us, producers {m['producer_us']:.0f} us"))

        many_row("bare redis-py (the floor)", many_sessions_bare(port, MANY, MANY_SECONDS))
        for kind, env in (("SQLite", use("sqlite", url)), ("Redis", use("redis", url))):
            for readers_as in ("threads", "async"):
                many_row(f"{kind}, readers as {readers_as}", many_sessions(env, MANY, MANY_SECONDS, readers_as=readers_as))

        use("redis", url)
        start, cpu = idle_cpu(2.0)
        rows.append(("(d) idle reader on Redis, 2 s blocked", f"{cpu:.4f} CPU-s",
                     f"whole process; target <=0.01 (starting to read before: {start:.4f} CPU-s, once)"))

        use("redis", url)
        usage, used = memory_per_million(port, MEMORY_TOKENS)
        use("sqlite", url)
        file_size = sqlite_file_per_million(MEMORY_TOKENS)
        rows.append(("(e) Redis memory per 1M 5-byte tokens", f"{usage / 2**20:.1f} MiB",
                     f"MEMORY USAGE of the stream ({usage / 1e6:.1f} B/token); used_memory grew "
                     f"{used / 2**20:.1f} MiB; measured on {MEMORY_TOKENS:,} tokens"))
        rows.append(("(e) SQLite file per 1M 5-byte tokens", f"{file_size / 2**20:.1f} MiB",
                     f"{file_size / 1e6:.1f} B/token, for comparison"))
    finally:
        lq.reset()
        server.terminate()
        server.wait(10)
        shutil.rmtree(directory, ignore_errors=True)
    print_table(f"redis benchmark{' (quick)' if QUICK else ''}, python {sys.version.split()[0]}, "
                f"redis-py {redis.__version__}, {os.cpu_count()} cores", "result", rows)


def print_table(title: str, column: str, rows: list[tuple[str, str, str]]) -> None:
    """Print ``rows`` (measure, value, notes) as a Markdown table under ``title``."""
    w = max(len(r[0]) for r in rows)
    print(f"\n{title}")
    print(f"| {'measure'.ljust(w)} | {column} | notes |")
    print(f"|{'-' * (w + 2)}|---|---|")
    for name, value, note in rows:
        print(f"| {name.ljust(w)} | {value} | {note} |")


if __name__ == "__main__":
    main()
