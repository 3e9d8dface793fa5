"""streamify with one listener vs a loop over the raw ``openai`` client stream.

Both read the same ChatAdapter reply from the bundled engine, in the same run, rounds
interleaved:

1. **throughput** — a 2,000-token answer, the engine unpaced (as fast as it can send):
   tokens/s over the whole reply, and time to the answer's first text (raw: the first
   delta after the field marker; streamify: the first ``StreamResponse``);
2. **latency** — a 100-token answer paced at 200 tokens/s, as a real model streams: the
   extra delay of each chunk over the same token in the raw stream (p50, p99).

Medians of ``--runs`` rounds. Target: streamify throughput ≥ 0.8× raw.

    python benchmarks/streamify_bench.py [--tokens 2000] [--runs 7]
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

os.environ.setdefault("LAZYSTREAM_HOME", tempfile.mkdtemp(prefix="lazystream-bench-"))

import openai  # noqa: E402

import lazystream.programs as programs  # noqa: E402
import lazystream.streaming as streaming  # noqa: E402

_VALUE_STARTED = re.compile(r"\[\[ ## answer ## \]\]\s*\S")


def raw_round(client: openai.OpenAI, messages: list[dict]) -> tuple[float, list[float]]:
    """Return (seconds for the whole reply, arrival time of each answer token)."""
    t0 = time.perf_counter()
    arrivals: list[float] = []
    seen = ""
    state = "before"    # before the answer's text, inside it, after it
    for chunk in client.chat.completions.create(model="m", messages=messages, stream=True,
                                                stream_options={"include_usage": True}):
        if chunk.choices and chunk.choices[0].delta.content:
            delta = chunk.choices[0].delta.content
            if state == "before":
                seen += delta
                if _VALUE_STARTED.search(seen):
                    state = "inside"
            elif state == "inside" and "[" in delta:   # the end marker begins
                state = "after"
            if state == "inside":
                arrivals.append(time.perf_counter() - t0)
    return time.perf_counter() - t0, arrivals


def streamify_round(stream_fn, question: str, use_async: bool) -> tuple[float, list[float]]:
    """Return (seconds to the final Prediction, arrival time of each non-empty chunk)."""
    async def consume_async() -> tuple[float, list[float]]:
        t0 = time.perf_counter()
        arrivals = []
        async for item in stream_fn(question=question):
            if isinstance(item, streaming.StreamResponse) and item.chunk:
                arrivals.append(time.perf_counter() - t0)
        return time.perf_counter() - t0, arrivals

    if use_async:
        return asyncio.run(consume_async())
    t0 = time.perf_counter()
    arrivals = []
    for item in stream_fn(question=question):
        if isinstance(item, streaming.StreamResponse) and item.chunk:
            arrivals.append(time.perf_counter() - t0)
    return time.perf_counter() - t0, arrivals


def measure(base_url: str, n_tokens: int, runs: int) -> dict[str, list[tuple[float, list[float]]]]:
    question = f"Tell me a story in {n_tokens} words."
    predict = programs.Predict("question -> answer")
    predict.lm = programs.LM("openai/m", api_base=base_url, cache=False)
    messages = programs.ChatAdapter().format(predict.signature, {"question": question})
    client = openai.OpenAI(base_url=base_url, api_key="unused")
    listeners = [streaming.StreamListener("answer")]
    sync_fn = streaming.streamify(predict, stream_listeners=listeners, async_streaming=False)
    async_fn = streaming.streamify(predict, stream_listeners=listeners)
    contenders = {
        "raw openai client stream": lambda: raw_round(client, messages),
        "streamify sync, 1 listener": lambda: streamify_round(sync_fn, question, False),
        "streamify async, 1 listener": lambda: streamify_round(async_fn, question, True),
    }
    results: dict[str, list] = {name: [] for name in contenders}
    for i in range(runs + 2):       # two warm-up rounds: connections, imports, the store
        for name, run in contenders.items():
            outcome = run()
            # the policy's N-word answer is N word tokens and a final "."
            assert len(outcome[1]) == n_tokens + 1, (name, len(outcome[1]))
            if i >= 2:
                results[name].append(outcome)
    return results


@contextlib.contextmanager
def _engine_process(tokens_per_second: float | None = None) -> Iterator[str]:
    """Run the bundled engine with the program policy in its own process, as a model
    server would be: in-process, its HTTP threads would compete for the GIL with both the
    raw client and streamify, and make the comparison noisy."""
    cmd = [sys.executable, "-m", "lazystream", "engine", "--port", "0",
           "--policy", "lazystream.programs:program_policy"]
    if tokens_per_second:
        cmd += ["--tokens-per-second", str(tokens_per_second)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        if "serving at" not in line:
            raise RuntimeError(f"engine did not start: {line!r}")
        yield line.split()[-1]
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    print(f"streamify benchmark — bundled engine in its own process, medians of {args.runs} runs, "
          f"Python {sys.version.split()[0]}, queue backend "
          f"{os.environ.get('LAZYSTREAM_QUEUE', 'sqlite')}\n")

    with _engine_process() as url:
        fast = measure(url, args.tokens, args.runs)
    raw_tps = statistics.median(args.tokens / total for total, _ in fast["raw openai client stream"])
    raw_first = statistics.median(arr[0] for _, arr in fast["raw openai client stream"])
    print(f"1. throughput: {args.tokens}-token answer, unpaced engine")
    print(f"| {'measure':<28} | {'tokens/s':>8} | {'× raw':>6} | {'first text ms':>13} |")
    print(f"|{'-' * 30}|{'-' * 10}|{'-' * 8}|{'-' * 15}|")
    for name, rounds in fast.items():
        tps = statistics.median(args.tokens / total for total, _ in rounds)
        first = statistics.median(arr[0] for _, arr in rounds)
        print(f"| {name:<28} | {tps:>8.0f} | {tps / raw_tps:>5.2f}× | {first * 1000:>13.2f} |")
    print(f"(raw first text: {raw_first * 1000:.2f} ms)\n")

    paced_tokens = 100
    with _engine_process(tokens_per_second=200) as url:
        paced = measure(url, paced_tokens, max(3, args.runs // 2))
    raw_arrivals = [statistics.median(run[1][i] for run in paced["raw openai client stream"])
                    for i in range(paced_tokens + 1)]
    print(f"2. latency: {paced_tokens}-token answer paced at 200 tokens/s — extra delay per "
          "chunk over the raw token")
    print(f"| {'measure':<28} | {'p50 ms':>7} | {'p99 ms':>7} |")
    print(f"|{'-' * 30}|{'-' * 9}|{'-' * 9}|")
    for name, rounds in paced.items():
        extra = sorted(run[1][i] - raw_arrivals[i] for run in rounds for i in range(paced_tokens + 1))
        p50 = extra[len(extra) // 2]
        p99 = extra[min(len(extra) - 1, int(len(extra) * 0.99))]
        print(f"| {name:<28} | {p50 * 1000:>7.2f} | {p99 * 1000:>7.2f} |")


if __name__ == "__main__":
    main()
