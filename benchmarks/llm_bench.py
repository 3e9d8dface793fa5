"""LLM streaming overhead: the raw openai client vs OnlineChatModule + FileSystemQueue.

The bundled engine runs in its own process (as a real server would) and streams a reply
of N tokens, one token per SSE chunk. Measured in the same run, alternating:

  (1) raw     a loop over the raw ``openai`` client stream;
  (2) module  ``OnlineChatModule(stream=True)`` submitted to ``lazystream.ThreadPoolExecutor``,
              with the submitter reading ``FileSystemQueue`` through ``follow``.

First unpaced ("as fast as it can"), then paced at 200 tokens/s, where the extra latency
per token is the time from the module receiving a chunk (the event's timestamp) to the
consumer holding it. Prints a table; the ratios are against (1) of the same run.

    .venv/bin/python benchmarks/llm_bench.py [--tokens 2000] [--paced-tokens 500] [--runs 7]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import openai

from lazystream import ThreadPoolExecutor, follow, read_session, session
from lazystream.llm import OnlineChatModule

MESSAGES = [{"role": "user", "content": "stream"}]


def start_engine(tokens: int, tps: float | None, workdir: str) -> tuple[subprocess.Popen, str]:
    script = os.path.join(workdir, f"reply-{tokens}.json")
    with open(script, "w") as f:
        json.dump([" ".join(f"w{i}" for i in range(tokens))], f)
    cmd = [sys.executable, "-m", "lazystream", "engine", "--port", "0", "--script", script, "--loop"]
    if tps:
        cmd += ["--tokens-per-second", str(tps)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if "serving at" not in line:
        proc.kill()
        raise RuntimeError(f"engine did not start: {line!r}")
    return proc, line.split()[-1]


def run_raw(client: openai.OpenAI) -> dict:
    t0 = time.perf_counter()
    first = None
    n = 0
    stream = client.chat.completions.create(model="bench", messages=MESSAGES, stream=True,
                                            stream_options={"include_usage": True})
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            if first is None:
                first = time.perf_counter()
            n += 1
    end = time.perf_counter()
    return {"tokens": n, "ttft": first - t0, "seconds": end - t0, "lat": []}


def run_module(llm: OnlineChatModule, executor: ThreadPoolExecutor) -> dict:
    with session() as sid:
        received: list[float] = []
        t0 = time.perf_counter()
        wall0 = time.time()
        future = executor.submit(llm, MESSAGES)
        first = None
        for _, items in follow(future):
            now = time.time()
            if first is None:
                first = time.perf_counter()
            received.extend([now] * len(items))
        end = time.perf_counter()
        sent = [e.ts for e in read_session(sid, queues=("lazy_stream",))]
    assert len(sent) == len(received), (len(sent), len(received))
    lat = [r - s for r, s in zip(received, sent)]
    return {"tokens": len(received), "ttft": first - t0, "seconds": end - t0, "lat": lat,
            "ttft_module": sent[0] - wall0}


def measure(url: str, runs: int) -> tuple[list[dict], list[dict]]:
    client = openai.OpenAI(base_url=url, api_key="bench", max_retries=0)
    llm = OnlineChatModule("bench", base_url=url, api_key="bench", stream=True)
    raw, mod = [], []
    with ThreadPoolExecutor(1) as executor:
        run_raw(client), run_module(llm, executor)   # warm up connections and imports
        for _ in range(runs):
            raw.append(run_raw(client))
            mod.append(run_module(llm, executor))
    return raw, mod


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def summarise(name: str, raw: list[dict], mod: list[dict]) -> list[tuple[str, str, str, str]]:
    raw_tps = statistics.median(r["tokens"] / r["seconds"] for r in raw)
    mod_tps = statistics.median(r["tokens"] / r["seconds"] for r in mod)
    raw_ttft = statistics.median(r["ttft"] for r in raw) * 1000
    mod_ttft = statistics.median(r["ttft"] for r in mod) * 1000
    mod_at = statistics.median(r["ttft_module"] for r in mod) * 1000
    lat = [x for r in mod for x in r["lat"]]
    rows = [
        (f"{name}: throughput (tokens/s)", f"{raw_tps:,.0f}", f"{mod_tps:,.0f}",
         f"{mod_tps / raw_tps:.2f}x"),
        (f"{name}: time to first token (ms)", f"{raw_ttft:.2f}", f"{mod_ttft:.2f}",
         f"{mod_ttft - raw_ttft:+.2f} ms"),
        (f"{name}:   of which until the module has it", "", f"{mod_at:.2f}",
         f"{mod_at - raw_ttft:+.2f} ms"),
        (f"{name}: extra latency/token p50 (ms)", "-", f"{pct(lat, 0.5) * 1000:.3f}", ""),
        (f"{name}: extra latency/token p99 (ms)", "-", f"{pct(lat, 0.99) * 1000:.3f}", ""),
    ]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=2000)
    parser.add_argument("--paced-tokens", type=int, default=500)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--paced-runs", type=int, default=3)
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="lazystream-llm-bench-")
    os.environ.setdefault("LAZYSTREAM_HOME", os.path.join(workdir, "home"))
    rows = []
    for name, tokens, tps, runs in (("unpaced", args.tokens, None, args.runs),
                                    ("200 tok/s", args.paced_tokens, 200.0, args.paced_runs)):
        proc, url = start_engine(tokens, tps, workdir)
        try:
            raw, mod = measure(url, runs)
        finally:
            proc.terminate()
            proc.wait(10)
            proc.stdout.close()
        assert all(r["tokens"] == tokens for r in raw + mod), "a run lost tokens"
        rows += summarise(name, raw, mod)
    backend = os.environ.get("LAZYSTREAM_QUEUE", "sqlite")
    print(f"LLM streaming: {args.tokens} tokens unpaced ({args.runs} runs), {args.paced_tokens} "
          f"at 200 tok/s ({args.paced_runs} runs); engine in its own process; queue backend {backend}")
    header = ("measure", "(1) raw openai", "(2) OnlineChatModule", "(2) vs (1)")
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(4)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |"
    print(line)
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths)) + " |")
    print("targets: (2) throughput >= 0.8x (1); time-to-first-token overhead <= 1 ms")


if __name__ == "__main__":
    main()
