"""``lazystream sessions``, ``lazystream show SID``, ``--version`` and the engine command's
one-line errors."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

import lazystream
from lazystream import cli
from lazystream.events import Event
from lazystream.inspection import SessionRow, format_sessions, list_sessions, summarize
from lazystream.queue import emit


def _run(*args: str, home: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if home is not None:
        env["LAZYSTREAM_HOME"] = home
    return subprocess.run([sys.executable, "-m", "lazystream", *args], env=env,
                          capture_output=True, text=True, timeout=50)


def test_version_is_the_package_version(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out == f"lazystream {lazystream.__version__}\n"


def _three_sessions() -> tuple[str, str]:
    with lazystream.session() as first:
        emit("status", "one")
    try:
        with lazystream.session() as second:
            emit("status", "two")
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    lazystream.FileSystemQueue().enqueue("x", sid="open-one")
    lazystream.queue.flush()
    return first, second


def test_sessions_lists_newest_first_with_status_events_and_process(backend_kind):
    first, second = _three_sessions()
    rows = list_sessions()
    assert [(r.sid, r.status, r.events, r.pid) for r in rows] == [
        ("open-one", "running", 1, os.getpid()),
        (second, "error", 3, os.getpid()),     # status, error, end
        (first, "ok", 2, os.getpid())]
    assert [r.sid for r in list_sessions(2)] == ["open-one", second]


def test_sessions_from_another_process(fresh_home):
    first, second = _three_sessions()
    proc = _run("sessions", "--json", home=str(fresh_home))
    assert proc.returncode == 0, proc.stderr
    listed = [json.loads(line) for line in proc.stdout.splitlines()]
    # this process is alive, so its open session is "running" from the other process too
    assert [(r["sid"], r["status"], r["events"]) for r in listed] == [
        ("open-one", "running", 1), (second, "error", 3), (first, "ok", 2)]


def test_a_session_whose_process_died_says_so(fresh_home):
    code = ("import lazystream; lazystream.FileSystemQueue().enqueue('x', sid='orphan'); "
            "lazystream.queue.backend().sync()")
    subprocess.run([sys.executable, "-c", code], env=dict(os.environ, LAZYSTREAM_HOME=str(fresh_home)),
                   check=True, timeout=50)
    [row] = list_sessions()
    assert (row.sid, row.status, row.events) == ("orphan", "producer exited", 1)


def test_sessions_table_format():
    rows = [SessionRow("abc-1", "running", 1234, started=1000.0, last=None, pid=42),
            SessionRow("abc-22", "ok", 7, started=100.0, last=None, pid=4242)]
    assert format_sessions(rows, now=1005.0) == (
        "SID     STATUS   EVENTS  AGE  PROCESS\n"
        "abc-1   running    1234  5s   pid 42\n"
        "abc-22  ok            7  15m  pid 4242")


def test_sessions_on_an_empty_store(fresh_home):
    proc = _run("sessions", home=str(fresh_home))
    assert (proc.returncode, proc.stdout) == (0, "no sessions stored (LAZYSTREAM_HOME is the store's directory)\n")


def _events(sid: str, items: list[tuple[str, tuple[str, ...], object]]) -> list[Event]:
    return [Event(i + 1, sid, "lazy_events", kind, ns, data, 100.0 + i / 4)
            for i, (kind, ns, data) in enumerate(items)]


AGENT_RUN = [
    ("run_start", (), {"run": "r1", "name": "FunctionCallAgent", "input": "Weather in Tokyo?"}),
    ("message_start", ("agent", "llm"), {"id": "m1", "run": "r1", "role": "assistant", "model": "gpt-x"}),
    ("text", ("agent", "llm"), "Let me "),
    ("text", ("agent", "llm"), "check."),
    ("tool_call_start", ("agent", "llm"), {"id": "c1", "name": "get_weather", "index": 0, "message": "m1"}),
    ("tool_call_delta", ("agent", "llm"), {"id": "c1", "delta": '{"city": "Tokyo"}'}),
    ("tool_call", ("agent", "llm"), {"id": "c1", "name": "get_weather", "arguments": {"city": "Tokyo"},
                                     "message": "m1"}),
    ("usage", ("agent", "llm"), {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15,
                                 "message": "m1"}),
    ("message_end", ("agent", "llm"), {"id": "m1", "finish_reason": "tool_calls"}),
    ("tool_start", ("agent",), {"id": "c1", "name": "get_weather", "arguments": {"city": "Tokyo"}}),
    ("tool_result", ("agent",), {"id": "c1", "name": "get_weather", "content": "10 C", "error": None}),
    ("status", (), "rate limited, retrying in 2 s"),
    ("trace", ("agent",), {"text": "10 C", "module": "get_weather", "path": "agent.get_weather",
                           "input": {"city": "Tokyo"}, "output": "10 C", "duration": 0.01, "error": None}),
    ("message_start", ("agent", "llm"), {"id": "m2", "run": "r1", "role": "assistant", "model": "gpt-x"}),
    ("text", ("agent", "llm"), "It is 10"),
    ("usage", ("agent", "llm"), {"prompt_tokens": 20, "completion_tokens": 3, "total_tokens": 23,
                                 "message": "m2"}),
    ("message_end", ("agent", "llm"), {"id": "m2", "finish_reason": "error"}),
    ("error", (), {"type": "LLMStreamError", "message": "the stream was cut"}),
    ("run_end", (), {"run": "r1", "status": "error",
                     "error": {"type": "LLMStreamError", "message": "the stream was cut"},
                     "output": None, "usage": {"prompt_tokens": 30, "completion_tokens": 8,
                                               "total_tokens": 38}}),
    ("end", (), {"status": "error", "error": {"type": "LLMStreamError", "message": "the stream was cut"}}),
]


def test_show_summarizes_runs_messages_tools_usage_and_errors():
    assert summarize("s1", _events("s1", AGENT_RUN)) == "\n".join([
        "session s1: ended error (LLMStreamError: the stream was cut), 20 events over 4.75 s",
        "usage: prompt 30, completion 8, total 38",
        "run r1 FunctionCallAgent: input Weather in Tokyo?",
        "  message m1 (assistant, model gpt-x): finish tool_calls",
        "    text: Let me check.",
        '    tool call get_weather({"city": "Tokyo"}) id c1',
        "    usage: prompt 10, completion 5, total 15",
        '  tool get_weather started, id c1: {"city": "Tokyo"}',
        "  tool get_weather -> 10 C",
        "  status: rate limited, retrying in 2 s",
        "  trace agent.get_weather: 10 C",
        "  message m2 (assistant, model gpt-x): finish error",
        "    text: It is 10",
        "    usage: prompt 20, completion 3, total 23",
        "  ERROR LLMStreamError: the stream was cut",
        "run r1 ended error: LLMStreamError: the stream was cut",
        "  usage: prompt 30, completion 8, total 38"])


def test_show_reads_a_stored_session_from_another_process(fresh_home):
    with lazystream.session() as sid:
        lazystream.FileSystemQueue().enqueue("Hel")
        lazystream.FileSystemQueue().enqueue("lo")
        emit("tool_result", {"id": "c9", "name": "lookup", "content": "", "error": "KeyError: 'x'"})
    lazystream.queue.backend().sync()
    proc = _run("show", sid, home=str(fresh_home))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[1:] == ["text", "  text: Hello", "tool lookup -> ERROR KeyError: 'x'"]
    assert proc.stdout.startswith(f"session {sid}: ended ok, 4 events over ")


def test_show_of_an_unknown_session_is_one_line(fresh_home):
    proc = _run("show", "no-such-sid", home=str(fresh_home))
    assert proc.returncode == 1
    assert proc.stderr == ("lazystream show: session 'no-such-sid' has no stored events: check the id "
                           "with 'lazystream sessions' (and LAZYSTREAM_HOME / LAZYSTREAM_QUEUE)\n")


def _free_port_in_use():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    return s


@pytest.mark.parametrize("args,message", [
    (["--script", "/no/such/file.json"],
     "lazystream engine: --script /no/such/file.json: cannot read it (No such file or directory); "
     "give the path of a JSON file"),
    (["--port", "70000"], "lazystream engine: --port 70000 is out of range; use 1-65535, or 0 for a free port"),
    (["--policy", "no_such_module_xyz:policy"],
     "lazystream engine: --policy 'no_such_module_xyz:policy': cannot import 'no_such_module_xyz' "
     "(ModuleNotFoundError: No module named 'no_such_module_xyz'); check the module name and PYTHONPATH"),
    (["--policy", "json:nothing"], "lazystream engine: --policy 'json:nothing': 'nothing' in 'json' is not a callable"),
    (["--policy", "json"], "lazystream engine: --policy 'json': use 'demo', 'echo', 'program' or module:callable"),
])
def test_engine_errors_are_one_line(args, message):
    proc = _run("engine", "--port", "0", *args)
    assert (proc.returncode, proc.stdout, proc.stderr) == (1, "", message + "\n")


def test_engine_port_in_use_is_one_line(tmp_path):
    script = tmp_path / "bad.json"
    script.write_text('{"not": "a list"}')
    proc = _run("engine", "--script", str(script))
    assert proc.stderr == f"lazystream engine: --script {script}: expected a JSON list of replies, got dict\n"
    with _free_port_in_use() as taken:
        port = taken.getsockname()[1]
        proc = _run("engine", "--port", str(port))
    assert (proc.returncode, proc.stderr) == (
        1, f"lazystream engine: cannot listen on 127.0.0.1:{port} (Address already in use); "
           f"pick another --port (0 picks a free one)\n")
