"""Web benchmark: a session's tokens over SSE against readers of the store in the same run.

(a) latency: a producer process writes 200 tokens/s (each carrying its emit time); one SSE
    client of a ``SessionServer`` process and one direct reader (``lazystream.tail``) of the
    same session measure emit-to-arrival, p50/p99;
(b) fan-out: 200 SSE clients of one session on one server (p50/p99 latency, server RSS),
    against 200 direct readers (threads running ``tail``) of the same session in a
    process of their own (p50/p99, that process's RSS).

All processes share one ``LAZYSTREAM_HOME`` (SQLite). Clocks: ``time.time()`` on one host.
Run: ``make bench`` (or ``python benchmarks/web_bench.py [--quick]``).
"""
from __future__ import annotations

import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

HOME = os.environ.setdefault("LAZYSTREAM_HOME", tempfile.mkdtemp(prefix="lazystream-webbench-"))
QUICK = "--quick" in sys.argv
RATE = 200
SECONDS = 2.0 if QUICK else 5.0
CLIENTS = 50 if QUICK else 200
ENV = dict(os.environ, LAZYSTREAM_HOME=HOME, LAZYSTREAM_QUEUE="sqlite")

PRODUCER = """
import sys, time, lazystream
sid, n, rate = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
q = lazystream.FileSystemQueue()
with lazystream.session(sid):
    start = time.perf_counter()
    for i in range(n):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        q.enqueue(repr(time.time()))
"""

SERVER = """
import sys
from lazystream.web import SessionServer
server = SessionServer(port=0, pending=120.0, max_streams=1000, max_connections=2000)
print(server.url, flush=True)
server.serve_forever()
"""

DIRECT = """
import sys, threading, time, json, lazystream
sid, readers = sys.argv[1], int(sys.argv[2])
lat = []
lock = threading.Lock()
ready = threading.Barrier(readers + 1)
def read():
    ready.wait()
    mine = []
    for e in lazystream.tail(sid, timeout=60):
        if e.kind == "text":
            mine.append(time.time() - float(e.data))
    with lock:
        lat.extend(mine)
threads = [threading.Thread(target=read) for _ in range(readers)]
for t in threads:
    t.start()
print("ready", flush=True)
ready.wait()
for t in threads:
    t.join()
rss = int(next(l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM")))
print(json.dumps({"lat": lat, "rss_kb": rss}), flush=True)
"""


def _pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))] * 1000


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_kb(pid: int, field: str = "VmRSS") -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(next(line.split()[1] for line in f if line.startswith(field)))


async def _sse_client(host: str, port: int, sid: str, out: list[float], connected: asyncio.Event,
                      counter: list[int], total: int) -> None:
    reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
    writer.write(f"GET /sessions/{sid}/events HTTP/1.1\r\nHost: b\r\nAccept: text/event-stream\r\n\r\n".encode())
    await writer.drain()
    counter[0] += 1
    if counter[0] == total:
        connected.set()
    while True:
        line = await reader.readline()
        if not line:
            break
        if line.startswith(b"data: {"):
            event = json.loads(line[6:])
            if event["kind"] == "text":
                out.append(time.time() - float(event["data"]))
            elif event["kind"] == "end":
                break
    writer.close()


async def _sse_clients(url: str, sid: str, n: int, start_producer) -> list[float]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    latencies: list[float] = []
    connected = asyncio.Event()
    counter = [0]
    tasks = [asyncio.create_task(_sse_client(host, int(port), sid, latencies, connected, counter, n))
             for _ in range(n)]
    await asyncio.wait_for(connected.wait(), 60)
    await asyncio.sleep(0.5)   # let the server set up every stream before the first token
    start_producer()
    await asyncio.wait_for(asyncio.gather(*tasks), 120)
    return latencies


def _producer(sid: str, n: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(PRODUCER), sid, str(n), str(RATE)], env=ENV)


def _direct(sid: str, readers: int, n: int) -> tuple[list[float], int]:
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(DIRECT), sid, str(readers)], env=ENV,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.5)
    producer = _producer(sid, n)
    result = json.loads(proc.stdout.readline())
    producer.wait(60)
    proc.wait(60)
    return result["lat"], result["rss_kb"]


def main() -> int:
    n = int(RATE * SECONDS)
    server = subprocess.Popen([sys.executable, "-c", textwrap.dedent(SERVER)], env=ENV, stdout=subprocess.PIPE,
                              text=True)
    url = server.stdout.readline().strip()
    try:
        idle_rss = _rss_kb(server.pid)
        rows = []
        for clients in (1, CLIENTS):
            sid = f"bench-sse-{clients}"
            producers: list[subprocess.Popen] = []
            peak = [idle_rss]
            stop = threading.Event()

            def sample() -> None:
                while not stop.wait(0.05):
                    peak[0] = max(peak[0], _rss_kb(server.pid))
            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            cpu0, mine0 = _cpu_s(server.pid), time.process_time()
            sse = asyncio.run(_sse_clients(url, sid, clients, lambda: producers.append(_producer(sid, n))))
            server_cpu, client_cpu = _cpu_s(server.pid) - cpu0, time.process_time() - mine0
            stop.set()
            sampler.join()
            for p in producers:
                p.wait(60)
            direct, direct_rss = _direct(f"bench-direct-{clients}", clients, n)
            assert len(sse) == len(direct) == clients * n, (len(sse), len(direct), clients * n)
            rows.append((clients, sse, peak[0], direct, direct_rss, server_cpu, client_cpu))
    finally:
        server.terminate()
        server.wait(30)

    print(f"# web: {RATE} tokens/s for {SECONDS:g} s ({n} tokens), server and producer in processes of their own")
    print(f"{'readers':>8} | {'SSE p50 ms':>10} | {'SSE p99 ms':>10} | {'server RSS MB':>13} || "
          f"{'direct p50 ms':>13} | {'direct p99 ms':>13} | {'reader proc RSS MB':>18} | p99 ratio")
    for clients, sse, rss, direct, direct_rss, _, _ in rows:
        print(f"{clients:>8} | {_pct(sse, 50):>10.2f} | {_pct(sse, 99):>10.2f} | {rss / 1024:>13.1f} || "
              f"{_pct(direct, 50):>13.2f} | {_pct(direct, 99):>13.2f} | {direct_rss / 1024:>18.1f} | "
              f"{_pct(sse, 99) / max(_pct(direct, 99), 1e-6):.2f}")
    print(f"# server RSS idle before the runs: {idle_rss / 1024:.1f} MB")
    for clients, *_, server_cpu, client_cpu in rows:
        print(f"# {clients} SSE readers: server CPU {server_cpu:.2f} s, the SSE clients' process CPU "
              f"{client_cpu:.2f} s over the {SECONDS:g} s run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
