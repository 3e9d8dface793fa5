"""Running a turn's tool calls: parallel, in call order, under the caller's session; faults
go back to the model as text with an error trace."""
from __future__ import annotations

import json
import threading

import pytest

import lazystream
from lazystream.queue import read_session
from lazystream.session import ns_scope
from lazystream.tools import fc_register
from lazystream.tools._execute import run_tool_calls
from lazystream.tools._registry import resolve_tools


def _call(call_id, name, arguments):
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments)
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def _tools(*fns):
    return {t.name: t for t in resolve_tools(fns)}


def _events(sid, *kinds):
    return [e for e in read_session(sid) if e.kind in kinds]


barrier = threading.Barrier(2, timeout=10)


def meet(city: str) -> dict:
    """Wait until the other call runs too, then report.

    Args:
        city: A city.
    """
    barrier.wait()   # both calls must be running at once, or this breaks
    return {"city": city, "sid": lazystream.current_sid()}


def add(a: int, b: int = 1) -> int:
    """Add two integers.

    Args:
        a: First.
        b: Second.
    """
    return a + b


def explode(reason: str) -> str:
    """Raise an error.

    Args:
        reason: Why.
    """
    raise ValueError(f"exploded because {reason}")


release = threading.Event()


def hang(x: int) -> str:
    """Block until released.

    Args:
        x: Anything.
    """
    release.wait(30)
    return "late"


def test_parallel_calls_run_at_once_and_return_in_call_order_under_the_callers_session():
    barrier.reset()
    calls = [_call("c1", "meet", {"city": "Tokyo"}), _call("c2", "meet", {"city": "Paris"})]
    with lazystream.session() as sid:
        outcomes = run_tool_calls(calls, _tools(meet))
    assert [(o.id, o.name, json.loads(o.content)) for o in outcomes] == [
        ("c1", "meet", {"city": "Tokyo", "sid": sid}), ("c2", "meet", {"city": "Paris", "sid": sid})]
    assert [o.error for o in outcomes] == [None, None]
    assert [o.message() for o in outcomes] == [
        {"role": "tool", "content": outcomes[0].content, "tool_call_id": "c1", "name": "meet"},
        {"role": "tool", "content": outcomes[1].content, "tool_call_id": "c2", "name": "meet"}]


def test_good_calls_write_nothing_when_not_traced():
    with lazystream.session() as sid:
        [outcome] = run_tool_calls([_call("c1", "add", {"a": 2})], _tools(add))
    assert outcome.content == "3"
    assert [e.kind for e in read_session(sid)] == ["end"]


def test_traced_calls_write_a_result_trace_and_a_tool_result_event_in_call_order():
    with lazystream.session() as sid:
        with ns_scope("agent"):
            run_tool_calls([_call("c1", "add", {"a": 2}), _call("c2", "add", {"a": 5, "b": 5})],
                           _tools(add), trace=True, events=True)
    assert [(e.kind, e.ns, e.value) for e in _events(sid, "trace", "tool_result")] == [
        ("tool_result", ("agent", "add"), {"id": "c1", "name": "add", "content": "3", "error": None}),
        ("trace", ("agent", "add"), "3"),
        ("tool_result", ("agent", "add"), {"id": "c2", "name": "add", "content": "10", "error": None}),
        ("trace", ("agent", "add"), "10")]


FAULTS = [
    ("unknown tool", _call("c1", "subtract", {"a": 1}), "UnknownTool",
     "Error: there is no tool named 'subtract'; available tools: add, explode."),
    ("malformed JSON", _call("c1", "add", '{"a": 1'), "MalformedArguments",
     "Error: the arguments are not valid JSON (Expecting ',' delimiter at position 7): {\"a\": 1 "
     "— call 'add' again with a JSON object of arguments."),
    ("wrong type", _call("c1", "add", {"a": "one"}), "InvalidArguments",
     "Error: invalid arguments for 'add': 'a' must be an integer, got \"one\". "
     "Call it again with corrected arguments."),
    ("missing and unknown", _call("c1", "add", {"c": 1}), "InvalidArguments",
     "Error: invalid arguments for 'add': unknown argument 'c' (parameters: a, b); missing "
     "required argument 'a'. Call it again with corrected arguments."),
    ("tool raises", _call("c1", "explode", {"reason": "testing"}), "ValueError",
     "Error: tool 'explode' failed: ValueError: exploded because testing"),
]


@pytest.mark.parametrize("case,call,kind,content", FAULTS, ids=[f[0] for f in FAULTS])
def test_a_bad_call_becomes_error_text_an_error_trace_and_an_error_tool_result(case, call, kind, content):
    with lazystream.session() as sid:
        [outcome] = run_tool_calls([call], _tools(add, explode))
    assert outcome.content == content
    assert outcome.error == {"type": kind, "message": content.removeprefix("Error: ")}
    name = call["function"]["name"]
    [result, trace] = _events(sid, "tool_result", "trace")
    assert (result.kind, result.value) == ("tool_result", {
        "id": "c1", "name": name, "content": content, "error": outcome.error})
    assert (trace.kind, trace.value, trace.data["error"]) == ("trace", content, outcome.error)
    # The run itself did not fail: no session `error` event.
    assert _events(sid, "error") == []
    assert read_session(sid)[-1].data["status"] == "ok"


def test_a_tool_over_its_timeout_is_reported_and_the_other_calls_still_return():
    release.clear()
    calls = [_call("c1", "hang", {"x": 1}), _call("c2", "add", {"a": 1})]
    try:
        with lazystream.session() as sid:
            outcomes = run_tool_calls(calls, _tools(hang, add), timeout=0.2)
    finally:
        release.set()
    assert [o.content for o in outcomes] == ["Error: tool 'hang' did not finish within 0.2 s.", "2"]
    assert outcomes[0].error == {"type": "ToolTimeout", "message": "tool 'hang' did not finish within 0.2 s."}
    assert [e.data["error"]["type"] for e in _events(sid, "trace")] == ["ToolTimeout"]


def test_a_tools_own_timeout_wins_over_the_callers():
    @fc_register("exec_timeouts", timeout=0.1)
    def slow(x: int) -> str:
        """Block until released.

        Args:
            x: Anything.
        """
        release.wait(30)
        return "late"

    release.clear()
    try:
        [outcome] = run_tool_calls([_call("c1", "slow", {"x": 1})],
                                   {t.name: t for t in resolve_tools(["exec_timeouts.slow"])},
                                   timeout=30)
    finally:
        release.set()
    assert outcome.content == "Error: tool 'slow' did not finish within 0.1 s."


def test_results_that_are_not_strings_are_sent_as_json():
    def info(key: str):
        """Return structured data.

        Args:
            key: A key.
        """
        return {"key": key, "values": [1, 2], "ok": True, "note": "café"}

    [outcome] = run_tool_calls([_call("c1", "info", {"key": "k"})], _tools(info))
    assert outcome.content == '{"key": "k", "values": [1, 2], "ok": true, "note": "café"}'


def test_a_tool_runs_as_a_module_named_after_it():
    from lazystream.module import callbacks
    from lazystream.queue import emit

    def report(step: str) -> str:
        """Report progress.

        Args:
            step: The step.
        """
        emit("status", f"working on {step}")
        return "done"

    seen = []

    class Watcher:
        def on_module_start(self, module, args, kwargs):
            seen.append(("start", module.name, kwargs))

        def on_module_end(self, module, output, exception):
            seen.append(("end", module.name, output))

    with lazystream.session() as sid, ns_scope("agent"), callbacks(Watcher()):
        [outcome] = run_tool_calls([_call("c1", "report", {"step": "one"})], _tools(report))
    assert outcome.content == "done"
    assert [(e.ns, e.value) for e in _events(sid, "status")] == [(("agent", "report"), "working on one")]
    assert seen == [("start", "report", {"step": "one"}), ("end", "report", "done")]
