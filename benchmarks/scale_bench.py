"""The queue's cost per session, per reader and per token (issue 8), against baselines
measured in the same run:

(1) scaling: N sessions x 50 tok/s, one producer and one reader thread per session, for
    N = 100 and 1,000 — delivered share, lost, latency p50/p99 — against one asyncio
    loop running the same producers and readers as coroutines over ``asyncio.Queue``;
(2) one session paced at 200 tok/s, an in-process reader — latency, against ``queue.Queue``;
(3) bytes written to disk per token, 100 sessions x 200 tok/s (``/proc/self/io``);
(4) RSS added by streaming 100k tokens through one session, against ``queue.Queue``;
(5) ``import lazystream`` against a bare interpreter;
(6) the seed's polling loop (``dequeue()`` / ``future.done()`` spin) with
    ``OnlineChatModule`` at 25 tok/s: process CPU against the raw ``openai`` loop;
(7) a reader in another process (``tail``) at 200 tok/s: latency;
(8) client CPU per token at 200 tok/s: ``OnlineChatModule`` + ``follow``, ``streamify``
    sync and async, against the raw ``openai`` loop.

    python benchmarks/scale_bench.py [--seconds 10] [--quick]

``--quick`` runs every measure briefly (seconds 2, fewer tokens); the numbers are then
only a smoke test.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import queue as stdqueue
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator

os.environ.setdefault("LAZYSTREAM_HOME", tempfile.mkdtemp(prefix="lazystream-bench-"))

import lazystream  # noqa: E402
from lazystream import FileSystemQueue, session  # noqa: E402

RATE = 50.0


def pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


def ms(x: float) -> str:
    return f"{x * 1e3:.2f} ms"


# --- (1) scaling --------------------------------------------------------------------------

def scale_threads(n: int, seconds: float, rate: float = RATE) -> dict:
    """N sessions, a producer and a reader thread each, through FileSystemQueue."""
    q = FileSystemQueue.get_instance("bench_scale")
    per = int(rate * seconds)
    t0 = time.perf_counter() + 0.5 + n / 2000          # time for every thread to start
    end = t0 + seconds + 1.0                            # tokens later than this count as not delivered
    lat: list[list[float]] = [[] for _ in range(n)]
    got = [0] * n
    sids = [os.urandom(8).hex() for _ in range(n)]

    def produce(i: int) -> None:
        sid = sids[i]
        phase = i / (n * rate)                          # spread the sessions over one period
        for k in range(per):
            due = t0 + phase + k / rate
            d = due - time.perf_counter()
            if d > 0:
                time.sleep(d)
            q.enqueue(due, sid=sid)

    def read(i: int) -> None:
        sid, mine = sids[i], lat[i]
        while got[i] < per:
            left = end - time.perf_counter()
            if left <= 0:
                return
            items = q.get(timeout=left, sid=sid)
            now = time.perf_counter()
            got[i] += len(items)
            mine.extend(now - due for due in items)

    threads = [threading.Thread(target=read, args=(i,), daemon=True) for i in range(n)]
    threads += [threading.Thread(target=produce, args=(i,), daemon=True) for i in range(n)]
    cpu0 = time.process_time()
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.1, end + 5 - time.perf_counter()))
    cpu = time.process_time() - cpu0
    lazystream.queue.flush()
    stored = sum(len(q.read(sid=sid)) for sid in sids)
    flat = [x for part in lat for x in part]
    in_time = sum(1 for x in flat if x <= end - t0)
    return {"offered": n * per, "delivered": len(flat), "stored": stored, "lost": n * per - stored if stored < n * per else 0,
            "p50": pct(flat, 50), "p99": pct(flat, 99), "cpu": cpu, "in_time": in_time}


def scale_stdqueue(n: int, seconds: float, rate: float = RATE) -> dict:
    """The same threads over one ``queue.Queue`` per session: what the threads alone cost."""
    per = int(rate * seconds)
    t0 = time.perf_counter() + 0.5 + n / 2000
    end = t0 + seconds + 1.0
    queues = [stdqueue.Queue() for _ in range(n)]
    lat: list[list[float]] = [[] for _ in range(n)]

    def produce(i: int) -> None:
        phase = i / (n * rate)
        for k in range(per):
            due = t0 + phase + k / rate
            d = due - time.perf_counter()
            if d > 0:
                time.sleep(d)
            queues[i].put(due)

    def read(i: int) -> None:
        mine = lat[i]
        while len(mine) < per:
            left = end - time.perf_counter()
            if left <= 0:
                return
            try:
                due = queues[i].get(timeout=left)
            except stdqueue.Empty:
                return
            mine.append(time.perf_counter() - due)

    threads = [threading.Thread(target=read, args=(i,), daemon=True) for i in range(n)]
    threads += [threading.Thread(target=produce, args=(i,), daemon=True) for i in range(n)]
    cpu0 = time.process_time()
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.1, end + 5 - time.perf_counter()))
    flat = [x for part in lat for x in part]
    return {"offered": n * per, "in_time": sum(1 for x in flat if x <= end - t0), "p50": pct(flat, 50),
            "p99": pct(flat, 99), "cpu": time.process_time() - cpu0}


def scale_asyncio(n: int, seconds: float, rate: float = RATE) -> dict:
    """The same producers and readers as coroutines on one asyncio loop (the baseline)."""
    per = int(rate * seconds)

    async def main() -> dict:
        loop = asyncio.get_running_loop()
        t0 = loop.time() + 0.2
        queues = [asyncio.Queue() for _ in range(n)]
        lat: list[float] = []

        async def produce(i: int) -> None:
            phase = i / (n * rate)
            for k in range(per):
                due = t0 + phase + k / rate
                d = due - loop.time()
                if d > 0:
                    await asyncio.sleep(d)
                queues[i].put_nowait(due)

        async def read(i: int) -> None:
            for _ in range(per):
                due = await queues[i].get()
                lat.append(loop.time() - due)

        cpu0 = time.process_time()
        await asyncio.gather(*(produce(i) for i in range(n)), *(read(i) for i in range(n)))
        return {"offered": n * per, "delivered": len(lat), "lost": n * per - len(lat), "p50": pct(lat, 50),
                "p99": pct(lat, 99), "cpu": time.process_time() - cpu0}

    return asyncio.run(main())


def scale_aget(n: int, seconds: float, rate: float = RATE) -> dict:
    """The asyncio baseline's producers and readers, through FileSystemQueue: producers
    ``enqueue``, readers ``await q.aget()`` (one event loop, the hub's writer thread)."""
    per = int(rate * seconds)
    q = FileSystemQueue.get_instance("bench_scale_async")
    sids = [os.urandom(8).hex() for _ in range(n)]

    async def main() -> dict:
        loop = asyncio.get_running_loop()
        t0 = loop.time() + 0.2
        end = t0 + seconds + 1.0
        lat: list[float] = []

        async def produce(i: int) -> None:
            phase, sid = i / (n * rate), sids[i]
            for k in range(per):
                due = t0 + phase + k / rate
                d = due - loop.time()
                if d > 0:
                    await asyncio.sleep(d)
                q.enqueue(due, sid=sid)

        async def read(i: int) -> None:
            got, sid = 0, sids[i]
            while got < per:
                left = end - loop.time()
                if left <= 0:
                    return
                items = await q.aget(timeout=left, sid=sid)
                now = loop.time()
                got += len(items)
                lat.extend(now - due for due in items)

        cpu0 = time.process_time()
        await asyncio.gather(*(produce(i) for i in range(n)), *(read(i) for i in range(n)))
        return {"offered": n * per, "in_time": sum(1 for x in lat if x <= end - t0), "p50": pct(lat, 50),
                "p99": pct(lat, 99), "cpu": time.process_time() - cpu0}

    result = asyncio.run(main())
    lazystream.queue.flush()
    stored = sum(len(q.read(sid=sid)) for sid in sids)
    result["lost"] = max(0, result["offered"] - stored)
    return result


# --- (2) one paced session ----------------------------------------------------------------

def paced_one(rate: float, n: int) -> tuple[list[float], list[float]]:
    q = FileSystemQueue.get_instance("bench_paced")
    lat, base = [], []
    with session() as sid:
        def produce(put) -> None:
            nxt = time.perf_counter()
            for _ in range(n):
                nxt += 1 / rate
                while (d := nxt - time.perf_counter()) > 0:
                    time.sleep(d)
                put(time.perf_counter())

        t = threading.Thread(target=produce, args=(lambda s: q.enqueue(s, sid=sid),))
        t.start()
        while len(lat) < n:
            for sent in q.get(timeout=30, sid=sid):
                lat.append(time.perf_counter() - sent)
        t.join()
    qq: stdqueue.Queue = stdqueue.Queue()
    t = threading.Thread(target=produce, args=(qq.put,))
    t.start()
    for _ in range(n):
        sent = qq.get()
        base.append(time.perf_counter() - sent)
    t.join()
    return lat, base


# --- (3) bytes per token --------------------------------------------------------------------

def _io_written() -> int:
    with open("/proc/self/io") as f:
        fields = dict(line.split(": ") for line in f.read().splitlines())
    return int(fields["wchar"])


def bytes_per_token(sessions: int, rate: float, seconds: float) -> tuple[float, float]:
    """Bytes this process wrote (write syscalls: WAL frames, checkpoints) per token, and the
    tokens' own JSON payload size, for comparison."""
    q = FileSystemQueue.get_instance("bench_bytes")
    lazystream.queue.flush()
    per = int(rate * seconds)
    sids = [os.urandom(8).hex() for _ in range(sessions)]
    token = " token"
    t0 = time.perf_counter() + 0.2
    w0 = _io_written()

    def produce(i: int) -> None:
        for k in range(per):
            d = t0 + i / (sessions * rate) + k / rate - time.perf_counter()
            if d > 0:
                time.sleep(d)
            q.enqueue(token, sid=sids[i])

    threads = [threading.Thread(target=produce, args=(i,)) for i in range(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lazystream.queue.flush()
    written = _io_written() - w0
    return written / (sessions * per), len(json.dumps(token))


# --- (4) RSS ------------------------------------------------------------------------------

_RSS_CHILD = """
import os, sys, threading, time, tempfile, queue
os.environ["LAZYSTREAM_HOME"] = tempfile.mkdtemp()
def rss():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS")) / 1024
N = 100_000
if sys.argv[1] == "queue.Queue":
    q = queue.Queue()
    put, get = q.put, lambda: [q.get()]
    before = rss()
else:
    import lazystream
    q = lazystream.FileSystemQueue()
    q.enqueue("warm", sid="rss"); q.dequeue(sid="rss")
    put, get = (lambda item: q.enqueue(item, sid="rss")), lambda: q.get(timeout=30, sid="rss")
    before = rss()
peak = before
def produce():
    for i in range(N):
        put(f" token {i}")
t = threading.Thread(target=produce); t.start()
got = 0
while got < N:
    got += len(get())
    if got % 1000 < 50:
        peak = max(peak, rss())
t.join()
print(max(peak, rss()) - before)
"""


def rss_added(kind: str) -> float:
    out = subprocess.run([sys.executable, "-c", _RSS_CHILD, kind], capture_output=True, text=True, timeout=300)
    if out.returncode:
        raise RuntimeError(out.stderr)
    return float(out.stdout.split()[-1])


# --- (5) import time ----------------------------------------------------------------------

def import_time(code: str, runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


# --- (6), (8): a model at a given pace ------------------------------------------------------

@contextlib.contextmanager
def engine(tokens: int, tps: float, policy: str | None = None) -> Iterator[str]:
    with tempfile.TemporaryDirectory() as work:
        cmd = [sys.executable, "-m", "lazystream", "engine", "--port", "0", "--tokens-per-second", str(tps)]
        if policy:
            cmd += ["--policy", policy]
        else:
            script = os.path.join(work, "reply.json")
            with open(script, "w") as f:
                json.dump([" ".join(f"w{i}" for i in range(tokens))], f)
            cmd += ["--script", script, "--loop"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        try:
            line = proc.stdout.readline()
            if "serving at" not in line:
                raise RuntimeError(f"engine did not start: {line!r}")
            yield line.split()[-1]
        finally:
            proc.terminate()
            proc.wait(30)


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def raw_cpu(url: str, messages: list[dict], runs: int) -> tuple[float, int]:
    import openai
    client = openai.OpenAI(base_url=url, api_key="bench", max_retries=0)
    n = 0
    list(client.chat.completions.create(model="m", messages=messages, stream=True))   # warm up
    c0 = _cpu()
    for _ in range(runs):
        for chunk in client.chat.completions.create(model="m", messages=messages, stream=True,
                                                    stream_options={"include_usage": True}):
            if chunk.choices and chunk.choices[0].delta.content:
                n += 1
    return _cpu() - c0, n


def seed_loop_cpu(url: str, runs: int) -> tuple[float, int]:
    """The seed's own loop, unchanged: spin on dequeue() and future.done()."""
    llm = lazystream.OnlineChatModule("bench", base_url=url, api_key="bench", stream=True)
    n = 0
    with lazystream.ThreadPoolExecutor(1) as pool:
        for i in range(runs + 1):
            if i == 1:
                c0 = _cpu()
            with session():
                future = pool.submit(llm, "stream")
                while True:
                    if value := FileSystemQueue().dequeue():
                        n += len(value) if i else 0
                    elif value := FileSystemQueue().get_instance("lazy_trace").dequeue():
                        pass
                    elif future.done():
                        break
    return _cpu() - c0, n


def module_cpu(url: str, runs: int) -> tuple[float, int]:
    llm = lazystream.OnlineChatModule("bench", base_url=url, api_key="bench", stream=True)
    n = 0
    with lazystream.ThreadPoolExecutor(1) as pool:
        for i in range(runs + 1):
            if i == 1:
                c0 = _cpu()
            with session():
                for _, items in lazystream.follow(pool.submit(llm, [{"role": "user", "content": "stream"}])):
                    n += len(items) if i else 0
    return _cpu() - c0, n


def streamify_cpu(url: str, runs: int, use_async: bool, words: int) -> tuple[float, int]:
    import lazystream.programs as programs
    import lazystream.streaming as streaming
    predict = programs.Predict("question -> answer")
    predict.lm = programs.LM("openai/m", api_base=url, cache=False)
    fn = streaming.streamify(predict, stream_listeners=[streaming.StreamListener("answer")],
                             async_streaming=use_async)
    question = f"Tell me a story in {words} words."
    n = 0

    async def consume_async() -> int:
        k = 0
        async for item in fn(question=question):
            k += isinstance(item, streaming.StreamResponse)
        return k

    for i in range(runs + 1):
        if i == 1:
            c0 = _cpu()
        k = asyncio.run(consume_async()) if use_async else \
            sum(isinstance(item, streaming.StreamResponse) for item in fn(question=question))
        n += k if i else 0
    return _cpu() - c0, n


def program_messages(words: int) -> list[dict]:
    import lazystream.programs as programs
    predict = programs.Predict("question -> answer")
    return programs.ChatAdapter().format(predict.signature, {"question": f"Tell me a story in {words} words."})


# --- (7) a reader in another process ------------------------------------------------------

_PRODUCER = """
import sys, time, lazystream
rate, n, sid = float(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
q = lazystream.FileSystemQueue()
sys.stdin.readline()
with lazystream.session(sid):
    nxt = time.time()
    for _ in range(n):
        nxt += 1 / rate
        while (d := nxt - time.time()) > 0:
            time.sleep(d)
        q.enqueue(time.time())
"""


def cross_process(rate: float, n: int) -> list[float]:
    sid = os.urandom(16).hex()
    proc = subprocess.Popen([sys.executable, "-c", _PRODUCER, str(rate), str(n), sid], stdin=subprocess.PIPE, text=True,
                            env=dict(os.environ))
    lat: list[float] = []
    reader_started = threading.Event()

    def read() -> None:
        reader_started.set()
        for event in lazystream.tail(sid, timeout=60):
            if event.kind == "text" or event.kind == "item":
                lat.append(time.time() - event.data)

    t = threading.Thread(target=read)
    os.environ["LAZYSTREAM_START_GRACE"] = "30"
    t.start()
    reader_started.wait(10)
    time.sleep(0.5)   # the reader is blocked in tail before the first token
    proc.stdin.write("go\n")
    proc.stdin.flush()
    t.join(n / rate + 60)
    proc.wait(60)
    return lat


# --- main -----------------------------------------------------------------------------------

def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0, help="duration of the scaling runs (default 10)")
    ap.add_argument("--quick", action="store_true", help="short runs everywhere (a smoke test)")
    ap.add_argument("--skip", default="", help="comma-separated measures to skip, e.g. 1000,llm")
    args = ap.parse_args()
    seconds = 2.0 if args.quick else args.seconds
    skip = set(filter(None, args.skip.split(",")))
    rows: list[tuple[str, str, str, str]] = []

    def row(*cells: str) -> None:
        rows.append(cells)
        print(" | ".join(cells), flush=True)

    for n in (100, 1000):
        if str(n) in skip:
            continue
        a = scale_asyncio(n, seconds)
        sq = scale_stdqueue(n, seconds)
        ours = scale_threads(n, seconds)
        ours_async = scale_aget(n, seconds)
        row(f"(1) {n:,} sessions x 50 tok/s x {seconds:g} s: asyncio loop", f"{a['delivered'] / a['offered']:.1%} "
            f"delivered, lost {a['lost']}", f"p50 {ms(a['p50'])}, p99 {ms(a['p99'])}", f"CPU {a['cpu']:.1f} s")
        row(f"(1) {n:,} sessions x 50 tok/s x {seconds:g} s: queue.Queue, 2 threads/session",
            f"{sq['in_time'] / sq['offered']:.1%} delivered in time", f"p50 {ms(sq['p50'])}, p99 {ms(sq['p99'])}",
            f"CPU {sq['cpu']:.1f} s")
        row(f"(1) {n:,} sessions x 50 tok/s x {seconds:g} s: FileSystemQueue, 2 threads/session",
            f"{ours['in_time'] / ours['offered']:.1%} delivered in time, lost {ours['lost']}",
            f"p50 {ms(ours['p50'])}, p99 {ms(ours['p99'])}", f"CPU {ours['cpu']:.1f} s")
        row(f"(1) {n:,} sessions x 50 tok/s x {seconds:g} s: FileSystemQueue, asyncio producers + aget readers",
            f"{ours_async['in_time'] / ours_async['offered']:.1%} delivered in time, lost {ours_async['lost']}",
            f"p50 {ms(ours_async['p50'])}, p99 {ms(ours_async['p99'])}", f"CPU {ours_async['cpu']:.1f} s")
    n2 = 200 if args.quick else 1000
    lat, base = paced_one(200, n2)
    row("(2) 1 session paced 200 tok/s: queue.Queue", f"p50 {ms(pct(base, 50))}", f"p99 {ms(pct(base, 99))}", "baseline")
    row("(2) 1 session paced 200 tok/s: FileSystemQueue", f"p50 {ms(pct(lat, 50))}", f"p99 {ms(pct(lat, 99))}", "")
    per_token, payload = bytes_per_token(100, 200, 1.0 if args.quick else 3.0)
    row("(3) bytes written per token, 100 sessions x 200 tok/s", f"{per_token:,.0f} B", f"payload {payload} B", "")
    rq, rours = rss_added("queue.Queue"), rss_added("lazystream")
    row("(4) RSS added by a 100k-token stream", f"{rours:.1f} MiB", f"queue.Queue {rq:.1f} MiB", "")
    bare = import_time("pass", 3 if args.quick else 7)
    imp = import_time("import lazystream", 3 if args.quick else 7)
    row("(5) import lazystream", f"{imp * 1e3:.0f} ms", f"bare interpreter {bare * 1e3:.0f} ms",
        f"+{(imp - bare) * 1e3:.0f} ms")
    if "llm" not in skip:
        runs = 1 if args.quick else 3
        with engine(50 if args.quick else 100, 25) as url:
            raw, n_raw = raw_cpu(url, [{"role": "user", "content": "stream"}], runs)
            seed, n_seed = seed_loop_cpu(url, runs)
        row("(6) seed polling loop, OnlineChatModule at 25 tok/s", f"{seed / n_seed * 1e6:,.0f} us CPU/token",
            f"raw client {raw / n_raw * 1e6:,.0f} us/token", f"{seed / n_seed / (raw / n_raw):.2f}x")
    xlat = cross_process(200, 200 if args.quick else 1000)
    row("(7) reader in another process (tail), 200 tok/s", f"p50 {ms(pct(xlat, 50))}", f"p99 {ms(pct(xlat, 99))}",
        f"{len(xlat)} tokens")
    if "llm" not in skip:
        runs = 1 if args.quick else 3
        with engine(200 if args.quick else 1000, 200) as url:
            raw, n_raw = raw_cpu(url, [{"role": "user", "content": "stream"}], runs)
            mod, n_mod = module_cpu(url, runs)
        base_us = raw / n_raw * 1e6
        row("(8) client CPU/token at 200 tok/s: raw openai", f"{base_us:,.0f} us", "", "baseline")
        row("(8) client CPU/token at 200 tok/s: OnlineChatModule + follow", f"{mod / n_mod * 1e6:,.0f} us", "",
            f"{mod / n_mod * 1e6 / base_us:.2f}x")
        words = 100 if args.quick else 400
        with engine(0, 200, "lazystream.programs:program_policy") as url:
            raw, n_raw = raw_cpu(url, program_messages(words), runs)
            sync, n_sync = streamify_cpu(url, runs, False, words)
            asy, n_asy = streamify_cpu(url, runs, True, words)
        base_us = raw / n_raw * 1e6
        row("(8) client CPU/token at 200 tok/s: raw openai (program reply)", f"{base_us:,.0f} us", "", "baseline")
        row("(8) ... streamify sync", f"{sync / n_sync * 1e6:,.0f} us", "", f"{sync / n_sync * 1e6 / base_us:.2f}x")
        row("(8) ... streamify async", f"{asy / n_asy * 1e6:,.0f} us", "", f"{asy / n_asy * 1e6 / base_us:.2f}x")
    print(f"\nscale benchmark{' (quick)' if args.quick else ''}, python {sys.version.split()[0]}, "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    print("| measure | result | | |\n|---|---|---|---|")
    for cells in rows:
        print("| " + " | ".join(cells) + " |")
    lazystream.queue.backend().close()


if __name__ == "__main__":
    main()
