"""The run model's costs: reading a run through ``lazystream.stream``, and stopping one.

Measured in the same run, against baselines of the same run:

  overhead   the raw ``openai`` client iterating a streamed reply of N tokens (baseline)
             vs ``lazystream.stream(OnlineChatModule(stream=True), q)`` iterating every
             event of the run (run_start, message_start, N text, usage, message_end,
             run_end, end), both against the bundled engine in its own process;
  cancel     a model that sends one token and then stalls for STALL seconds. Baseline: a
             raw ``openai`` loop that checks a stop flag at every chunk (what a reader-side
             flag can do: it waits for the model). lazystream: ``lazystream.cancel(sid)``
             from this process and from another process; the time is from the cancel call
             to the run's ``end`` event being readable, and to the engine seeing the client
             hang up (for another process, timed from its cancel call: its start-up excluded).

    .venv/bin/python benchmarks/runs_bench.py [--tokens 2000] [--runs 5] [--stall 2]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import openai

import lazystream
from lazystream import OnlineChatModule
from lazystream.engine import Engine, Faults

MESSAGES = [{"role": "user", "content": "stream"}]


def start_engine(tokens: int, workdir: str) -> tuple[subprocess.Popen, str]:
    script = os.path.join(workdir, f"reply-{tokens}.json")
    with open(script, "w") as f:
        json.dump([" ".join(f"w{i}" for i in range(tokens))], f)
    cmd = [sys.executable, "-m", "lazystream", "engine", "--port", "0", "--script", script, "--loop"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()   # "serving the engine at http://127.0.0.1:PORT/v1 ..."
    url = next(w for w in line.split() if w.startswith("http://"))
    return proc, url


def raw(url: str) -> float:
    client = openai.OpenAI(base_url=url, api_key="x", max_retries=0)
    t0 = time.perf_counter()
    with client.chat.completions.create(model="m", messages=MESSAGES, stream=True) as stream:
        for _ in stream:
            pass
    return time.perf_counter() - t0


def through_stream(url: str, llm: OnlineChatModule) -> float:
    t0 = time.perf_counter()
    events = list(lazystream.stream(llm, MESSAGES))
    elapsed = time.perf_counter() - t0
    assert events[-1].data == {"status": "ok"}, events[-1]
    return elapsed


def overhead(tokens: int, runs: int) -> list[tuple[str, float, float]]:
    with tempfile.TemporaryDirectory() as workdir:
        proc, url = start_engine(tokens, workdir)
        try:
            llm = OnlineChatModule("m", base_url=url, api_key="x", stream=True)
            raw(url), through_stream(url, llm)   # warm up both paths
            a, b = [], []
            for _ in range(runs):
                a.append(raw(url))
                b.append(through_stream(url, llm))
        finally:
            proc.terminate()
            proc.wait()
    base = statistics.median(a)
    return [("raw openai stream (baseline)", base, 1.0),
            ("lazystream.stream, every event", statistics.median(b), statistics.median(b) / base)]


def raw_flag_stop(url: str) -> float:
    """A raw loop told to stop right after the first token: it can only stop at the next chunk."""
    client = openai.OpenAI(base_url=url, api_key="x", max_retries=0)
    stop = threading.Event()
    asked = 0.0
    with client.chat.completions.create(model="m", messages=MESSAGES, stream=True) as stream:
        for chunk in stream:
            if stop.is_set():
                break
            if chunk.choices and chunk.choices[0].delta.content:
                asked = time.perf_counter()
                stop.set()
    return time.perf_counter() - asked


def lazystream_stop(url: str, engine: Engine) -> tuple[float, float]:
    llm = OnlineChatModule("m", base_url=url, api_key="x", stream=True)
    seen = engine.disconnects
    s = lazystream.stream(llm, MESSAGES)
    for event in s:
        if event.kind == "text":
            break
    t0 = time.perf_counter()
    lazystream.cancel(s.sid)
    engine.wait_disconnects(seen + 1, timeout=60)
    hung_up = time.perf_counter() - t0
    events = list(lazystream.tail(s.sid, timeout=60))
    assert events[-1].data == {"status": "cancelled"}, events[-1]
    ended = time.perf_counter() - t0
    s.close()
    return hung_up, ended


def cancel(runs: int, stall: float) -> list[tuple[str, float, float]]:
    engine = Engine("one two three", model="m", faults=Faults(stall=stall, stall_after=1))
    with engine as url:
        base = statistics.median(raw_flag_stop(url) for _ in range(runs))
        here = [lazystream_stop(url, engine) for _ in range(runs)]
    rows = [(f"raw loop, stop flag (model stalls {stall:g} s) (baseline)", base, 1.0)]
    hung = statistics.median(h for h, _ in here)
    ended = statistics.median(e for _, e in here)
    rows.append(("cancel(sid), same process: engine sees hang-up", hung, hung / base))
    rows.append(("cancel(sid), same process: end event readable", ended, ended / base))
    return rows


def _cross_process_latency(runs: int, stall: float) -> float:
    """Cancel from another process, timed inside the child (start-up excluded)."""
    engine = Engine("one two three", model="m", faults=Faults(stall=stall, stall_after=1))
    got = []
    with engine as url:
        for _ in range(runs):
            llm = OnlineChatModule("m", base_url=url, api_key="x", stream=True)
            s = lazystream.stream(llm, MESSAGES)
            for event in s:
                if event.kind == "text":
                    break
            seen = engine.disconnects
            child = subprocess.Popen(
                [sys.executable, "-c", "import sys, time, lazystream\nsys.stdin.readline()\n"
                 f"t = time.time(); lazystream.cancel({s.sid!r}); print(t, flush=True)"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=dict(os.environ))
            child.stdin.write("go\n")
            child.stdin.flush()
            asked = float(child.stdout.readline())
            engine.wait_disconnects(seen + 1, timeout=60)
            got.append(time.time() - asked)
            child.wait()
            s.close()
    return statistics.median(got)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--stall", type=float, default=2.0)
    args = parser.parse_args()
    rows = overhead(args.tokens, args.runs)
    print(f"\nReading one run of {args.tokens} tokens (median of {args.runs}):")
    print(f"| {'path':<44} | {'seconds':>8} | {'ratio':>6} |")
    print(f"|{'-' * 46}|{'-' * 10}|{'-' * 8}|")
    for name, value, ratio in rows:
        print(f"| {name:<44} | {value:8.3f} | {ratio:6.2f} |")
    rows = cancel(args.runs, args.stall)
    rows.append(("cancel(sid), another process: engine sees hang-up",
                 _cross_process_latency(args.runs, args.stall), 0.0))
    rows[-1] = (rows[-1][0], rows[-1][1], rows[-1][1] / rows[0][1])
    print(f"\nStopping a run while the model stalls (median of {args.runs}):")
    print(f"| {'how':<66} | {'seconds':>8} | {'ratio':>6} |")
    print(f"|{'-' * 68}|{'-' * 10}|{'-' * 8}|")
    for name, value, ratio in rows:
        print(f"| {name:<66} | {value:8.3f} | {ratio:6.2f} |")


if __name__ == "__main__":
    main()
