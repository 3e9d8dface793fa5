"""Helpers the web tests share: hand-built runs per docs/events.md, the Node checker, SSE parsing."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from lazystream.events import Event

NODE_DIR = Path(__file__).resolve().parent / "node"
WAIT = 20


def ev(seq: int, kind: str, data, ns=("agent", "llm"), queue=None) -> Event:
    queue = queue or {"text": "lazy_stream", "trace": "lazy_trace"}.get(kind, "lazy_events")
    return Event(seq, "s1", queue, kind, tuple(ns), data, 1_700_000_000.0 + seq)


def tool_run() -> list[Event]:
    """One agent run, as the contract writes it: reasoning, a streamed tool call, its result, an answer."""
    tool_ns = ("agent", "get_current_weather")
    return [
        ev(1, "run_start", {"run": "r1", "name": "weather", "input": "weather in Tokyo?"}, ns=()),
        ev(2, "message_start", {"id": "m1", "run": "r1", "role": "assistant", "model": "engine"}),
        ev(3, "think", "Need the tool."),
        ev(4, "tool_call_start", {"id": "c1", "name": "get_current_weather", "index": 0, "message": "m1"}),
        ev(5, "tool_call_delta", {"id": "c1", "delta": '{"location": "Tok'}),
        ev(6, "tool_call_delta", {"id": "c1", "delta": 'yo"}'}),
        ev(7, "tool_call", {"id": "c1", "name": "get_current_weather", "arguments": {"location": "Tokyo"},
                            "message": "m1"}),
        ev(8, "usage", {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15, "message": "m1"}),
        ev(9, "message_end", {"id": "m1", "finish_reason": "tool_calls"}),
        ev(10, "tool_start", {"id": "c1", "name": "get_current_weather", "arguments": {"location": "Tokyo"}},
           ns=tool_ns),
        ev(11, "tool_result", {"id": "c1", "name": "get_current_weather", "content": '{"temperature": "10"}',
                               "error": None}, ns=tool_ns),
        ev(12, "status", "composing the answer", ns=("agent",)),
        ev(13, "message_start", {"id": "m2", "run": "r1", "role": "assistant", "model": "engine"}),
        ev(14, "text", "It is "),
        ev(15, "text", "10 C."),
        ev(16, "usage", {"prompt_tokens": 20, "completion_tokens": 4, "total_tokens": 24, "message": "m2"}),
        ev(17, "message_end", {"id": "m2", "finish_reason": "stop"}),
        ev(18, "run_end", {"run": "r1", "status": "ok", "error": None, "output": "It is 10 C.",
                           "usage": {"prompt_tokens": 30, "completion_tokens": 9, "total_tokens": 39}}, ns=()),
        ev(19, "end", {"status": "ok"}, ns=()),
    ]


def failed_run() -> list[Event]:
    """A run whose model fails mid-message (the contract's order of a failing run)."""
    return [
        ev(1, "run_start", {"run": "r2", "name": "weather", "input": "q"}, ns=()),
        ev(2, "message_start", {"id": "m1", "run": "r2", "role": "assistant", "model": None}),
        ev(3, "text", "Part"),
        ev(4, "message_end", {"id": "m1", "finish_reason": "error"}),
        ev(5, "error", {"type": "LLMStreamError", "message": "the stream was cut"}),
        ev(6, "run_end", {"run": "r2", "status": "error",
                          "error": {"type": "LLMStreamError", "message": "the stream was cut"},
                          "output": None, "usage": None}, ns=()),
        ev(7, "end", {"status": "error", "error": {"type": "LLMStreamError", "message": "the stream was cut"}},
           ns=()),
    ]


def cancelled_run() -> list[Event]:
    return [
        ev(1, "run_start", {"run": "r3", "name": "weather", "input": "q"}, ns=()),
        ev(2, "message_start", {"id": "m1", "run": "r3", "role": "assistant", "model": None}),
        ev(3, "text", "Par"),
        ev(4, "message_end", {"id": "m1", "finish_reason": "cancelled"}),
        ev(5, "run_end", {"run": "r3", "status": "cancelled", "error": None, "output": None, "usage": None},
           ns=()),
        ev(6, "end", {"status": "cancelled"}, ns=()),
    ]


def node() -> str:
    """Path of ``node`` with the test packages installed, or skip (only when allowed)."""
    exe = shutil.which("node")
    ready = exe is not None and (NODE_DIR / "node_modules" / "ai").is_dir()
    if not ready:
        reason = ("node is not installed" if exe is None else
                  f"the npm packages are not installed: run `npm ci` in {NODE_DIR}")
        if os.environ.get("LAZYSTREAM_REQUIRE_NODE"):
            pytest.fail(f"LAZYSTREAM_REQUIRE_NODE is set but {reason}")
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    return exe


def check_ui_stream(*args: str, stdin: bytes | None = None) -> dict:
    """Run tests/node/check_ui_stream.mjs (the `ai` package's own parser); return its report."""
    proc = subprocess.run([node(), str(NODE_DIR / "check_ui_stream.mjs"), *args], input=stdin,
                          capture_output=True, timeout=WAIT * 2, cwd=NODE_DIR)
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
    return json.loads(proc.stdout)


def sse_data(body: str) -> list[str]:
    """The ``data`` of each SSE message in ``body`` (comments and heartbeats dropped)."""
    out = []
    for block in body.split("\n\n"):
        data = [line[6:] if line.startswith("data: ") else line[5:]
                for line in block.split("\n") if line.startswith("data:")]
        if data:
            out.append("\n".join(data))
    return out
