"""Runs a UI can follow: lifecycle and message boundaries, cancellation, one end per session."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

import lazystream
from lazystream import FileSystemQueue, OnlineChatModule, ThreadPoolExecutor, read_session, session, tail
from lazystream.engine import Engine, Faults
from lazystream.runs import RunCancelled


def llm_for(url, **kw):
    return OnlineChatModule("m", base_url=url, api_key="x", stream=True, name="llm", **kw)


def shape(sid):
    """(kind, data-without-ids) of every event: the sequence a UI renders."""
    out = []
    for e in read_session(sid):
        d = e.data
        if isinstance(d, dict):
            d = {k: v for k, v in d.items() if k not in ("id", "run", "message")}
        out.append((e.kind, d))
    return out


def test_a_submitted_streamed_call_is_one_run_with_one_message():
    with Engine("Hi there", model="m") as url:
        with session() as sid:
            with ThreadPoolExecutor(1) as pool:
                assert pool.submit(llm_for(url), "hello").result() == "Hi there"
    events = read_session(sid)
    assert shape(sid) == [
        ("run_start", {"name": "llm", "input": "hello"}),
        ("message_start", {"role": "assistant", "model": "m"}),
        ("text", "Hi"), ("text", " there"),
        ("usage", {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}),
        ("message_end", {"finish_reason": "stop"}),
        ("run_end", {"status": "ok", "error": None, "output": "Hi there",
                     "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}),
        ("end", {"status": "ok"}),
    ]
    run = events[0].data["run"]
    message = events[1].data["id"]
    assert events[1].data["run"] == run and events[-2].data["run"] == run
    assert events[4].data["message"] == message and events[5].data["id"] == message
    assert [e.ns for e in events] == [(), ("llm",), ("llm",), ("llm",), ("llm",), ("llm",), (), ()]


def test_two_calls_of_one_module_are_two_messages():
    with Engine("ok", model="m") as url:
        llm = llm_for(url)

        def twice(q):
            return llm(q) + llm(q)

        with session() as sid:
            with ThreadPoolExecutor(1) as pool:
                assert pool.submit(twice, "q").result() == "okok"
    starts = [e.data["id"] for e in read_session(sid) if e.kind == "message_start"]
    ends = [e.data["id"] for e in read_session(sid) if e.kind == "message_end"]
    assert len(set(starts)) == 2 and starts == ends


def test_a_failing_run_closes_its_message_then_error_then_run_end_then_end():
    with Engine("one two three", model="m", faults=Faults(cut_after=2)) as url:
        with pytest.raises(lazystream.LLMStreamError):
            with session() as sid:
                with ThreadPoolExecutor(1) as pool:
                    pool.submit(llm_for(url), "q").result()
    kinds = [k for k, _ in shape(sid)]
    assert kinds == ["run_start", "message_start", "text", "text", "message_end", "error", "run_end", "end"]
    d = dict(shape(sid))
    assert d["message_end"] == {"finish_reason": "error"}
    assert d["run_end"]["status"] == "error" and d["run_end"]["error"]["type"] == "LLMStreamError"
    assert d["end"]["status"] == "error"


# -- cancellation --------------------------------------------------------------------------
def _first_text(sid):
    for e in tail(sid, timeout=30):
        if e.kind == "text":
            return e


def _assert_cancelled_run(sid, texts):
    kinds = [k for k, _ in shape(sid)]
    assert kinds == ["run_start", "message_start"] + ["text"] * texts + ["message_end", "run_end"]
    d = dict(shape(sid))
    assert d["message_end"] == {"finish_reason": "cancelled"}
    assert d["run_end"]["status"] == "cancelled" and d["run_end"]["error"] is None


def test_cancel_sid_stops_a_stalled_model_at_once_and_closes_its_stream():
    # the model sends one token, then stalls for a minute: the cancel must not wait for it
    engine = Engine("one two three", model="m", faults=Faults(stall=60, stall_after=1))
    with engine as url, session() as sid:
        with ThreadPoolExecutor(1) as pool:
            future = pool.submit(llm_for(url), "q")
            _first_text(sid)
            assert lazystream.cancel(sid) is True
            with pytest.raises(RunCancelled):
                future.result(timeout=30)
        assert engine.wait_disconnects(1, timeout=30)
        _assert_cancelled_run(sid, texts=1)
    assert len(engine.requests) == 1


def test_future_cancel_stops_a_running_run():
    engine = Engine("a b c d e f g h", model="m", tokens_per_second=5)
    with engine as url, session() as sid:
        with ThreadPoolExecutor(1) as pool:
            future = pool.submit(llm_for(url), "q")
            _first_text(sid)
            assert future.cancel() is True
            with pytest.raises(RunCancelled):
                future.result(timeout=30)
        assert engine.wait_disconnects(1, timeout=30)
    assert [k for k, _ in shape(sid)][-3:] == ["message_end", "run_end", "end"]
    assert dict(shape(sid))["run_end"]["status"] == "cancelled"


def test_cancel_from_another_process_closes_the_model_stream():
    engine = Engine("one two three", model="m", faults=Faults(stall=60, stall_after=1))
    with engine as url, session() as sid:
        with ThreadPoolExecutor(1) as pool:
            future = pool.submit(llm_for(url), "q")
            _first_text(sid)
            env = dict(os.environ)
            child = subprocess.run(
                [sys.executable, "-c", textwrap.dedent(f"""
                    import lazystream
                    print(lazystream.cancel({sid!r}))
                """)], env=env, capture_output=True, text=True, timeout=60)
            assert (child.stdout, child.returncode) == ("True\n", 0), child.stderr
            with pytest.raises(RunCancelled):
                future.result(timeout=30)
        assert engine.wait_disconnects(1, timeout=30)
    kinds = [k for k, _ in shape(sid)]
    assert kinds == ["run_start", "message_start", "text", "cancel", "message_end", "run_end", "end"]
    assert [e.queue for e in read_session(sid) if e.kind == "cancel"] == ["lazy_control"]


def test_cancel_of_an_ended_or_unknown_session_is_false():
    with session() as sid:
        FileSystemQueue().enqueue("x")
    assert lazystream.cancel(sid) is False
    assert lazystream.cancel("no-such-session") is False
    with pytest.raises(ValueError, match="sid must be a non-empty"):
        lazystream.cancel("")


# -- one end per session ---------------------------------------------------------------------
def test_nested_session_with_the_same_sid_writes_one_end():
    with session("same-sid-nested") as sid:
        with session("same-sid-nested"):
            FileSystemQueue().enqueue("inner")
        FileSystemQueue().enqueue("outer")
    assert [(e.kind, e.data) for e in read_session(sid)] == [
        ("text", "inner"), ("text", "outer"), ("end", {"status": "ok"})]


def test_reusing_an_ended_sid_is_refused():
    with session("used-once"):
        FileSystemQueue().enqueue("x")
    with pytest.raises(ValueError, match="'used-once' has already ended.*use a new sid"):
        with session("used-once"):
            pass
    assert [e.kind for e in read_session("used-once")] == ["text", "end"]


def test_an_exception_leaving_a_bare_session_writes_error_then_end():
    with pytest.raises(KeyError):
        with session() as sid:
            raise KeyError("k")
    assert [(e.kind, e.data) for e in read_session(sid)] == [
        ("error", {"type": "KeyError", "message": "'k'"}),
        ("end", {"status": "error", "error": {"type": "KeyError", "message": "'k'"}})]


def test_online_chat_module_refuses_a_nan_timeout():
    with pytest.raises(lazystream.LLMConfigError, match=r"timeout must be .* got nan"):
        OnlineChatModule("m", base_url="http://127.0.0.1:9/v1", api_key="x", timeout=float("nan"))


# -- an agent run, tools ---------------------------------------------------------------------
from lazystream.tools import FunctionCallAgent, fc_register  # noqa: E402


@fc_register("runs_tools")
def get_weather(city: str) -> str:
    """Get the weather.

    Args:
        city (str): the city
    """
    return f"{city}: 10 C"


@fc_register("runs_tools")
async def get_weather_async(city: str) -> str:
    """Get the weather, asynchronously.

    Args:
        city (str): the city
    """
    import asyncio
    await asyncio.sleep(0)
    return f"{city}: 12 C"


@fc_register("runs_tools")
def list_files(city: str) -> str:
    """List a directory whose file names are not UTF-8 (as os.listdir returns them).

    Args:
        city (str): the city
    """
    return "report-\udcff.txt"


def _agent_run(url, tool):
    agent = FunctionCallAgent(llm_for(url), tools=[f"runs_tools.{tool}"])
    with session() as sid:
        with ThreadPoolExecutor(1) as pool:
            answer = pool.submit(agent, "weather in Tokyo?").result()
    return answer, sid


def test_an_agent_run_is_the_documented_sequence():
    """The sequence docs/events.md pictures, exactly."""
    with Engine(model="m") as url:
        answer, sid = _agent_run(url, "get_weather")
    assert answer == "get_weather returned Tokyo: 10 C."
    events = read_session(sid)
    ns_llm = ("functioncallagent", "function_call", "llm")
    ns_tool = ("functioncallagent", "function_call", "get_weather")
    run, m1, m2 = events[0].data["run"], events[1].data["id"], None
    call = events[2].data["id"]
    deltas = ['{', '"', 'city', '"', ':', ' "', 'Tokyo', '"', '}']
    got = [(e.kind, e.ns, e.data) for e in events]
    m2 = next(d["id"] for k, _, d in got[16:] if k == "message_start")
    assert got == [
        ("run_start", (), {"run": run, "name": "functioncallagent", "input": "weather in Tokyo?"}),
        ("message_start", ns_llm, {"id": m1, "run": run, "role": "assistant", "model": "m"}),
        ("tool_call_start", ns_llm, {"id": call, "name": "get_weather", "index": 0, "message": m1}),
        *[("tool_call_delta", ns_llm, {"id": call, "delta": d}) for d in deltas],
        ("tool_call", ns_llm, {"id": call, "name": "get_weather", "arguments": {"city": "Tokyo"}, "message": m1}),
        ("usage", ns_llm, {"prompt_tokens": 4, "completion_tokens": 10, "total_tokens": 14, "message": m1}),
        ("message_end", ns_llm, {"id": m1, "finish_reason": "tool_calls"}),
        ("tool_start", ns_tool, {"id": call, "name": "get_weather", "arguments": {"city": "Tokyo"}}),
        ("tool_result", ns_tool, {"id": call, "name": "get_weather", "content": "Tokyo: 10 C", "error": None}),
        ("message_start", ns_llm, {"id": m2, "run": run, "role": "assistant", "model": "m"}),
        *[("text", ns_llm, t) for t in ["get", "_", "weather", " returned", " Tokyo", ":", " 10", " C", "."]],
        ("usage", ns_llm, {"prompt_tokens": 8, "completion_tokens": 9, "total_tokens": 17, "message": m2}),
        ("message_end", ns_llm, {"id": m2, "finish_reason": "stop"}),
        ("run_end", (), {"run": run, "status": "ok", "error": None, "output": answer,
                         "usage": {"prompt_tokens": 12, "completion_tokens": 19, "total_tokens": 31}}),
        ("end", (), {"status": "ok"}),
    ]


def test_an_async_tool_is_awaited_and_its_result_goes_to_the_model():
    with Engine(model="m") as url:
        answer, sid = _agent_run(url, "get_weather_async")
    assert answer == "get_weather_async returned Tokyo: 12 C."
    [result] = [e.data for e in read_session(sid) if e.kind == "tool_result"]
    assert (result["content"], result["error"]) == ("Tokyo: 12 C", None)


_slow_finished = []


@fc_register("runs_tools", timeout=0.2)
async def slow_weather(city: str) -> str:
    """Get the weather, too slowly.

    Args:
        city (str): the city
    """
    import asyncio
    try:
        await asyncio.sleep(60)
    finally:
        _slow_finished.append(city)   # runs only because the task was cancelled


def test_an_async_tool_over_its_timeout_is_cancelled_and_reported():
    with Engine(model="m") as url:
        answer, sid = _agent_run(url, "slow_weather")
    [result] = [e.data for e in read_session(sid) if e.kind == "tool_result"]
    assert result["error"]["type"] in ("ToolTimeout", "TimeoutError")
    assert "did not finish within 0.2 s" in result["content"]
    assert _slow_finished == ["Tokyo"]


def test_a_tool_result_with_a_lone_surrogate_does_not_abort_the_agent():
    with Engine(model="m") as url:
        answer, sid = _agent_run(url, "list_files")
    assert answer.startswith("list_files returned report-")
    [result] = [e.data for e in read_session(sid) if e.kind == "tool_result"]
    assert result["content"] == "report-\\udcff.txt" and result["error"] is None


def test_concurrent_calls_of_one_module_at_one_place_get_distinct_ns():
    import threading as th
    both_asked = th.Barrier(2, timeout=10)

    def policy(request):
        both_asked.wait()   # neither reply starts before both calls are open
        return "a b c"

    engine = Engine(policy, model="m")
    with engine as url:
        llm = llm_for(url)
        with session() as sid:
            with ThreadPoolExecutor(1) as pool:
                def two_at_once(q):
                    with ThreadPoolExecutor(2) as inner:
                        return [f.result() for f in [inner.submit(llm, q), inner.submit(llm, q)]]
                assert pool.submit(two_at_once, "q").result() == ["a b c", "a b c"]
    events = read_session(sid)
    starts = [e for e in events if e.kind == "message_start"]
    assert len(starts) == 2
    # each message's events share one ns, and the two ns differ: text attributes to one message
    by_ns = {}
    for e in events:
        if e.kind in ("message_start", "text", "message_end"):
            by_ns.setdefault(e.ns, []).append(e.kind)
    assert len(by_ns) == 2
    assert all(kinds[0] == "message_start" and kinds[-1] == "message_end" and kinds.count("text") == 3
               for kinds in by_ns.values())


_tool_started = __import__("threading").Event()
_tool_saw_cancel = []


@fc_register("runs_tools")
def wait_for_cancel(city: str) -> str:
    """A long tool that checks for cancellation.

    Args:
        city (str): the city
    """
    _tool_started.set()
    _tool_saw_cancel.append(lazystream.current_run().cancelled.wait(30))
    lazystream.check_cancelled()
    return "not reached"


def test_cancel_during_a_tool_signals_the_tool_and_makes_no_further_model_call():
    engine = Engine(model="m")
    with engine as url:
        agent = FunctionCallAgent(llm_for(url), tools=["runs_tools.wait_for_cancel"])
        with session() as sid:
            with ThreadPoolExecutor(1) as pool:
                future = pool.submit(agent, "weather in Tokyo?")
                assert _tool_started.wait(30)
                assert lazystream.cancel(sid) is True
                with pytest.raises(RunCancelled):
                    future.result(timeout=30)
    assert _tool_saw_cancel == [True]
    assert len(engine.requests) == 1   # the model is not asked again
    kinds = [k for k, _ in shape(sid)]
    assert kinds[-4:] == ["message_end", "tool_start", "run_end", "end"]
    assert dict(shape(sid))["run_end"]["status"] == "cancelled"


@pytest.mark.parametrize("stream", [True, False])
def test_cancel_before_the_model_answers_at_all_closes_the_request(stream):
    # the model stalls before sending even its response headers
    import threading as th
    asked = th.Event()

    def policy(request):
        asked.set()
        return "one two"

    engine = Engine(policy, model="m", faults=Faults(stall=60, stall_after=0))
    with engine as url, session() as sid:
        llm = OnlineChatModule("m", base_url=url, api_key="x", stream=stream, name="llm")
        with ThreadPoolExecutor(1) as pool:
            future = pool.submit(llm, "q")
            assert asked.wait(30)   # the request reached the model, which now stalls
            assert lazystream.cancel(sid) is True
            with pytest.raises(RunCancelled):
                future.result(timeout=30)
        assert engine.wait_disconnects(1, timeout=30)
    assert len(engine.requests) == 1
