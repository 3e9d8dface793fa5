"""``python -m lazystream tail``: another process follows a session."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import lazystream
from lazystream.queue import emit


def _tail(*args: str, home: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, LAZYSTREAM_HOME=home)
    return subprocess.run([sys.executable, "-m", "lazystream", "tail", *args], env=env,
                          capture_output=True, text=True, timeout=50)


def test_tail_prints_every_event_then_exits_with_the_status(fresh_home):
    with lazystream.session() as sid:
        lazystream.FileSystemQueue().enqueue("Hel")
        lazystream.FileSystemQueue().enqueue("lo")
        emit("status", "done")
    lazystream.queue.backend().sync()
    proc = _tail(sid, home=str(fresh_home))
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [(e["kind"], e["data"]) for e in lines] == [
        ("text", "Hel"), ("text", "lo"), ("status", "done"), ("end", {"status": "ok"})]
    resumed = _tail(sid, "--after", str(lines[1]["seq"]), "--text", home=str(fresh_home))
    assert resumed.stdout == "\n"


def test_tail_text_mode_and_error_status(fresh_home):
    try:
        with lazystream.session() as sid:
            lazystream.FileSystemQueue().enqueue("partial")
            raise RuntimeError("model went away")
    except RuntimeError:
        pass
    lazystream.queue.backend().sync()
    proc = _tail(sid, "--text", home=str(fresh_home))
    assert (proc.returncode, proc.stdout) == (1, "partial\n")


def test_tail_gives_up_on_a_silent_session(fresh_home):
    lazystream.FileSystemQueue().enqueue("x", sid="silent")
    lazystream.queue.backend().sync()
    proc = _tail("silent", "--timeout", "0.3", home=str(fresh_home))
    assert proc.returncode == 2
    assert "no event in session 'silent'" in proc.stderr


def test_serve_streams_a_session_over_http(fresh_home):
    import urllib.request
    with lazystream.session() as sid:
        lazystream.FileSystemQueue().enqueue("over http")
    lazystream.queue.backend().sync()
    env = dict(os.environ, LAZYSTREAM_HOME=str(fresh_home))
    proc = subprocess.Popen([sys.executable, "-m", "lazystream", "serve", "--port", "0"], env=env,
                            stdout=subprocess.PIPE, text=True)
    try:
        banner = proc.stdout.readline()
        assert banner.startswith("lazystream serving session events at http://127.0.0.1:")
        base = banner.split(" at ")[1].split("/sessions")[0]
        with urllib.request.urlopen(f"{base}/sessions/{sid}/events", timeout=30) as resp:
            body = resp.read().decode()
        assert 'event: text\ndata: {"seq"' in body and '"data": "over http"' in body
        assert body.rstrip().endswith("data: [DONE]")
    finally:
        proc.terminate()
        proc.wait(30)
