"""OnlineChatModule against the bundled engine, over real HTTP with the real openai SDK."""
from __future__ import annotations

import json

import pytest

import lazystream
from lazystream import FileSystemQueue, ThreadPoolExecutor, follow, read_session, session
from lazystream.llm import (LLMConfigError, LLMError, LLMStreamError, LLMTimeoutError,
                            OnlineChatModule)
from lazystream.llm._rawtext_parser import RawToolCallParser
from lazystream.llm._toolcall_stream import ToolCallAssembler
from lazystream.engine import Deltas, Engine, Faults, ToolCall, Turn, echo, render, tokenize
from lazystream.engine.rawtext import FORMATS

TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}}}}]


def llm_for(url: str, **kw) -> OnlineChatModule:
    kw.setdefault("retry_backoff", 0.01)
    return OnlineChatModule("test-model", base_url=url, api_key="unused", **kw)


def events(sid: str, *kinds: str) -> list:
    """(kind, ns, data) of the session's events, optionally of some kinds only."""
    return [(e.kind, e.ns, e.data) for e in read_session(sid) if not kinds or e.kind in kinds]


def call(data: dict) -> tuple[str, str]:
    return data["function"]["name"], data["function"]["arguments"]


# -- streaming text ---------------------------------------------------------------------------
def test_stream_writes_each_delta_in_order_under_the_module_path():
    with Engine("The current weather in Tokyo is 10 degrees.") as url, session() as sid:
        llm = llm_for(url, stream=True, name="llm")
        assert llm("hi") == "The current weather in Tokyo is 10 degrees."
        assert FileSystemQueue().dequeue() == ["The", " current", " weather", " in", " Tokyo", " is",
                                               " 10", " degrees", "."]
        assert {e.ns for e in read_session(sid) if e.kind == "text"} == {("llm",)}


def test_seed_pattern_executor_and_dequeue_loop_sees_all_pieces():
    with Engine("To get to the other side!") as url:
        llm = llm_for(url, stream=True)
        with ThreadPoolExecutor(1) as executor:
            future = executor.submit(llm, "Why did the chicken cross the road?")
            pieces = [p for _, items in follow(future) for p in items]
        assert future.result() == "To get to the other side!"
        assert pieces == ["To", " get", " to", " the", " other", " side", "!"]


def test_stream_false_writes_nothing():
    with Engine(Turn("ok", reasoning_content="hm", tool_calls=[ToolCall("f", {})])) as url, \
            session() as sid:
        result = llm_for(url)("hi", tools=TOOLS)
        assert result["content"] == "ok" and call(result["tool_calls"][0]) == ("f", "{}")
        assert read_session(sid) == []


def test_return_trace_writes_a_trace_record():
    with Engine("fine") as url, session() as sid:
        llm_for(url, return_trace=True, name="llm")("how are you?")
        assert FileSystemQueue.get_instance("lazy_trace").dequeue() == ["fine"]
        (trace,) = [e.data for e in read_session(sid) if e.kind == "trace"]
        assert (trace["module"], trace["path"], trace["input"], trace["output"], trace["error"]) == (
            "OnlineChatModule", "llm", "how are you?", "fine", None)


def test_system_prompt_and_message_list_input():
    engine = Engine(echo)
    with engine as url:
        llm = llm_for(url, system_prompt="Be brief.", temperature=0.2)
        assert llm([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                    {"role": "user", "content": "c"}]) == "c"
        assert llm([{"role": "system", "content": "Own."}, {"role": "user", "content": "d"}]) == "d"
    first, second = engine.requests
    assert first.messages[0] == {"role": "system", "content": "Be brief."}
    assert first.params["temperature"] == 0.2 and first.params["model"] == "test-model"
    assert [m["content"] for m in second.messages] == ["Own.", "d"]


def test_stream_requests_usage_and_emits_a_usage_event():
    engine = Engine("a b c")
    with engine as url, session() as sid:
        llm_for(url, stream=True)("x y")
        assert engine.requests[0].params["stream_options"] == {"include_usage": True}
        [(start, _, message)] = [(k, ns, d) for k, ns, d in events(sid, "message_start")]
        assert events(sid, "usage") == [("usage", ("onlinechatmodule",), {
            "prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5, "message": message["id"]})]


def test_missing_usage_chunk_is_tolerated():
    with Engine("a b", send_usage=False) as url, session() as sid:
        assert llm_for(url, stream=True)("x") == "a b"
        assert events(sid, "usage") == []


def test_reasoning_content_becomes_think_events():
    with Engine(Turn("42.", reasoning_content="Six times seven")) as url, session() as sid:
        assert llm_for(url, stream=True)("?") == "42."
        assert [d for k, _, d in events(sid, "think", "text")] == ["Six", " times", " seven", "42", "."]
        assert [k for k, _, _ in events(sid, "think", "text")] == ["think"] * 3 + ["text"] * 2
        assert FileSystemQueue().dequeue() == ["42", "."]


# -- tool calls -------------------------------------------------------------------------------------
def test_tool_calls_stream_text_before_and_emit_completed_calls():
    turn = Turn("Let me check.", tool_calls=[ToolCall("get_weather", {"city": "Tokyo"}, id="call_a"),
                                             ToolCall("get_weather", {"city": "Paris"}, id="call_b")])
    with Engine(turn) as url, session() as sid:
        result = llm_for(url, stream=True)("weather?", tools=TOOLS)
        assert result == {"role": "assistant", "content": "Let me check.", "tool_calls": [
            {"id": "call_a", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city": "Tokyo"}'}},
            {"id": "call_b", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]}
        assert FileSystemQueue().dequeue() == ["Let", " me", " check", "."]
        [message] = [d["id"] for _, _, d in events(sid, "message_start")]
        assert [d for _, _, d in events(sid, "tool_call")] == [
            {"id": "call_a", "name": "get_weather", "arguments": {"city": "Tokyo"}, "message": message},
            {"id": "call_b", "name": "get_weather", "arguments": {"city": "Paris"}, "message": message}]


def _fn(index, id=None, name=None, arguments=None, type_=True):
    fn = {k: v for k, v in (("name", name), ("arguments", arguments)) if v is not None}
    d = {"index": index, "function": fn}
    if id:
        d["id"] = id
        d["type"] = "function"
    return d


def stream_calls(deltas: list[dict]) -> list[tuple[str, str, str]]:
    with Engine(Deltas(deltas, finish_reason="tool_calls")) as url, session() as sid:
        result = llm_for(url, stream=True)("?", tools=TOOLS)
        emitted = [(d["id"], d["name"], d["arguments"]) for _, _, d in events(sid, "tool_call")]
        streamed = _streamed_calls(sid)
        assert FileSystemQueue().dequeue() == []   # tool-call deltas never reach the text stream
    returned = [(c["id"], *call(c)) for c in result["tool_calls"]]
    assert [(i, n, _json_or_text(a)) for i, n, a in returned] == emitted
    assert streamed == returned   # start + deltas rebuild each call exactly, as it streamed
    return returned


def _json_or_text(text):
    try:
        return json.loads(text)
    except ValueError:
        return text


def _streamed_calls(sid):
    """The calls as a UI rebuilds them from tool_call_start and tool_call_delta alone."""
    calls = {}
    for kind, _, d in events(sid, "tool_call_start", "tool_call_delta"):
        if kind == "tool_call_start":
            calls[d["id"]] = [d["name"], ""]
        else:
            calls[d["id"]][1] += d["delta"]
    return [(i, n, a) for i, (n, a) in calls.items()]


def test_tool_call_name_split_across_deltas():
    assert stream_calls([
        {"tool_calls": [_fn(0, "call_1", "get_cur")]},
        {"tool_calls": [_fn(0, name="rent_weather")]},
        {"tool_calls": [_fn(0, arguments='{"city": "Oslo"}')]},
    ]) == [("call_1", "get_current_weather", '{"city": "Oslo"}')]


def test_several_tool_calls_in_one_chunk():
    assert stream_calls([
        {"tool_calls": [_fn(0, "call_1", "f", '{"a":'), _fn(1, "call_2", "g", '{"b":')]},
        {"tool_calls": [_fn(0, arguments=" 1}"), _fn(1, arguments=" 2}")]},
    ]) == [("call_1", "f", '{"a": 1}'), ("call_2", "g", '{"b": 2}')]


def test_tool_call_arguments_in_one_character_fragments():
    args = '{"city": "San Francisco", "unit": "celsius"}'
    deltas = [{"tool_calls": [_fn(0, "call_1", "get_weather", "")]}]
    deltas += [{"tool_calls": [_fn(0, arguments=ch)]} for ch in args]
    assert stream_calls(deltas) == [("call_1", "get_weather", args)]


def test_index_zero_reused_for_parallel_calls():
    assert stream_calls([
        {"tool_calls": [_fn(0, "call_1", "f", "")]},
        {"tool_calls": [_fn(0, arguments='{"x": 1}')]},
        {"tool_calls": [_fn(0, "call_2", "f", "")]},
        {"tool_calls": [_fn(0, arguments='{"x": 2}')]},
    ]) == [("call_1", "f", '{"x": 1}'), ("call_2", "f", '{"x": 2}')]


def test_index_zero_reused_without_ids():
    a = ToolCallAssembler()
    a.feed([{"index": 0, "function": {"name": "f", "arguments": '{"x": 1}'}}])
    a.feed([{"index": 0, "function": {"name": "g", "arguments": '{}'}}])
    assert [call(c) for c in a.calls()] == [("f", '{"x": 1}'), ("g", "{}")]
    assert all(c["id"].startswith("call_") for c in a.calls())


def test_malformed_tool_json_is_returned_raw():
    with Engine(ToolCall("f", {"a": 1}), faults=Faults(malformed_tool_json=True)) as url:
        result = llm_for(url, stream=True)("?", tools=TOOLS)
    assert call(result["tool_calls"][0]) == ("f", '{"a": 1')


# -- raw-text tool calls -------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["internlm2", "qwen"])
def test_raw_text_tool_tokens_never_reach_the_stream_at_any_split(fmt):
    section = render(FORMATS[fmt], "get_weather", '{"city": "Tokyo"}')
    text = "Checking <now>. " + section + " Done<"
    expected_text = "Checking <now>.  Done<"
    replies = [Turn(tokens=[text[:i], text[i:]]) for i in range(len(text) + 1)]
    with Engine(replies) as url:
        llm = llm_for(url, stream=True, tool_call_format=fmt)
        for i in range(len(replies)):
            with session() as sid:
                result = llm("?", tools=TOOLS)
                pieces = FileSystemQueue().dequeue()
                assert "".join(pieces) == expected_text, f"split at {i}: {pieces}"
                assert result["content"] == expected_text
                assert call(result["tool_calls"][0]) == ("get_weather", '{"city": "Tokyo"}')
                assert [(d["name"], d["arguments"]) for _, _, d in events(sid, "tool_call")] == [
                    ("get_weather", {"city": "Tokyo"})]
                assert [(n, a) for _, n, a in _streamed_calls(sid)] == [("get_weather", '{"city": "Tokyo"}')]


@pytest.mark.parametrize("fmt", ["internlm2", "qwen"])
def test_raw_text_engine_and_parser_round_trip(fmt):
    turn = Turn("Sure.", tool_calls=[ToolCall("f", {"a": 1}), ToolCall("g", {"b": [2]})])
    with Engine(turn, tool_call_format=fmt) as url:
        for stream in (True, False):
            with session():
                result = llm_for(url, stream=stream, tool_call_format=fmt)("?", tools=TOOLS)
                assert result["content"] == "Sure."
                assert [call(c) for c in result["tool_calls"]] == [("f", '{"a": 1}'), ("g", '{"b": [2]}')]
                assert "".join(FileSystemQueue().dequeue()) == ("Sure." if stream else "")


def test_raw_parser_flushes_a_partial_prefix_that_is_not_a_token():
    p = RawToolCallParser("qwen")
    assert p.feed("a <tool") == "a "
    assert p.feed("box> b <to") == "<toolbox> b "
    assert p.finish() == "<to"
    assert p.calls == []


# -- faults ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("faults", [Faults(fail_first=2, status=500), Faults(fail_first=2, status=429),
                                    Faults(drop_first=2)])
def test_retry_before_the_first_token(faults):
    engine = Engine("recovered fine", faults=faults)
    with engine as url, session() as sid:
        assert llm_for(url, stream=True, max_retries=2)("?") == "recovered fine"
        assert FileSystemQueue().dequeue() == ["recovered", " fine"]
        assert events(sid, "error") == []
    assert len(engine.requests) == 3


def test_retry_non_streaming():
    engine = Engine("ok", faults=Faults(fail_first=1, status=503))
    with engine as url:
        assert llm_for(url)("?") == "ok"
    assert len(engine.requests) == 2


def test_retries_exhausted_raise_with_status_and_error_event():
    engine = Engine("never", faults=Faults(fail_first=5, status=500))
    with engine as url, session() as sid:
        with pytest.raises(LLMError, match=r"failed after 2 attempts: HTTP 500: injected fault") as info:
            llm_for(url, stream=True, max_retries=1, name="llm")("?")
        assert info.value.status_code == 500
        assert events(sid, "error") == [("error", ("llm",), {"type": "LLMError", "message": str(info.value)})]
    assert len(engine.requests) == 2


def test_client_errors_are_not_retried():
    engine = Engine("x", api_key="right")
    with engine as url:
        llm = OnlineChatModule("m", base_url=url, api_key="wrong", retry_backoff=0.01)
        with pytest.raises(LLMError, match="HTTP 401: Incorrect API key") as info:
            llm("?")
    assert info.value.status_code == 401 and len(engine.requests) == 0


def test_cut_mid_stream_keeps_partial_text_raises_and_does_not_retry():
    engine = Engine("one two three four five", faults=Faults(cut_after=3))
    with engine as url, session() as sid:
        with pytest.raises(LLMStreamError, match="broke after 13 characters were streamed") as info:
            llm_for(url, stream=True, name="llm")("?")
        assert info.value.partial_text == "one two three"
        assert FileSystemQueue().dequeue() == ["one", " two", " three"]
        assert [k for k, _, _ in events(sid)] == ["message_start", "text", "text", "text", "message_end", "error"]
        assert events(sid, "message_end")[0][2]["finish_reason"] == "error"
        assert events(sid, "error")[0][2]["type"] == "LLMStreamError"
    assert len(engine.requests) == 1


def test_cut_before_any_token_is_retried():
    engine = Engine("x y", faults=Faults(cut_after=0))
    with engine as url, session() as sid:
        with pytest.raises(LLMError, match="failed after 2 attempts"):
            llm_for(url, stream=True, max_retries=1)("?")
        assert [k for k, _, _ in events(sid)] == ["message_start", "status", "message_end", "error"]  # the retry is said
    assert len(engine.requests) == 2


def test_worker_error_is_reported_once():
    with Engine("one two three", faults=Faults(cut_after=1)) as url, session() as sid:
        with ThreadPoolExecutor(1) as executor:
            future = executor.submit(llm_for(url, stream=True), "?")
            with pytest.raises(LLMStreamError):
                list(follow(future))
        assert [k for k, _, _ in events(sid, "error")] == ["error"]


def test_timeout_mid_stream_raises_timeout_with_error_event():
    with Engine("one two three", faults=Faults(stall=5, stall_after=2)) as url, session() as sid:
        with pytest.raises(LLMTimeoutError, match=r"no data from .* within timeout=0.3 s") as info:
            llm_for(url, stream=True, timeout=0.3)("?")
        assert isinstance(info.value, TimeoutError)
        assert info.value.partial_text == "one two"
        assert [k for k, _, _ in events(sid)] == ["message_start", "text", "text", "message_end", "error"]


def test_timeout_before_the_response_is_not_retried():
    engine = Engine("x", faults=Faults(stall=5))
    with engine as url:
        with pytest.raises(LLMTimeoutError):
            llm_for(url, timeout=0.3, max_retries=3)("?")
    assert len(engine.requests) == 1


# -- configuration ------------------------------------------------------------------------------
def test_missing_model_and_key_name_the_variables(monkeypatch):
    for var in ("LAZYSTREAM_MODEL", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(LLMConfigError, match="pass model='…' or set LAZYSTREAM_MODEL"):
        OnlineChatModule(api_key="k")
    with pytest.raises(LLMConfigError, match="pass api_key='…' or set OPENAI_API_KEY.*OPENAI_BASE_URL"):
        OnlineChatModule("gpt-4o-mini")


def test_configuration_from_the_environment(monkeypatch):
    with Engine("from env") as url:
        monkeypatch.setenv("OPENAI_BASE_URL", url)
        monkeypatch.setenv("OPENAI_API_KEY", "k")
        monkeypatch.setenv("LAZYSTREAM_MODEL", "env-model")
        llm = OnlineChatModule()
        assert (llm.model, llm.base_url, llm("?")) == ("env-model", url + "/", "from env")


@pytest.mark.parametrize("kwargs, match", [
    ({"max_retries": -1}, "max_retries must be an int >= 0, got -1"),
    ({"timeout": 0}, "timeout must be seconds > 0 or None, got 0"),
    ({"tool_call_format": "llama"}, "tool_call_format 'llama' is unknown"),
    ({"stream_options": {}}, "leave stream_options to the module"),
])
def test_bad_settings_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        OnlineChatModule("m", api_key="k", **kwargs)


def test_bad_input_raises_naming_it():
    llm = OnlineChatModule("m", base_url="http://127.0.0.1:9/v1", api_key="k")
    with pytest.raises(LLMConfigError, match="input must be a str or a list of OpenAI messages.*int '42'"):
        llm(42)


# -- concurrency ---------------------------------------------------------------------------------------
def test_32_concurrent_sessions_each_get_their_own_text():
    messages = [f"session {i} says {' '.join(['w%d' % (i * 7 + k) for k in range(i % 5 + 3)])}"
                for i in range(32)]
    with Engine(echo) as url:
        llm = llm_for(url, stream=True)

        def one(message: str) -> tuple[str, list[str]]:
            with session():
                result = llm(message)
                return result, FileSystemQueue().dequeue()

        with ThreadPoolExecutor(32) as executor:
            results = list(executor.map(one, messages))
    for message, (result, pieces) in zip(messages, results):
        assert result == message
        assert pieces == tokenize(message)


def test_exports_from_the_package():
    assert lazystream.llm.OnlineChatModule is OnlineChatModule


@pytest.mark.parametrize("fmt", ["internlm2", "qwen"])
def test_raw_parser_at_every_pair_of_split_points(fmt):
    text = "a<b " + render(FORMATS[fmt], "f", '{"x": "<|"}') + "c<" + render(FORMATS[fmt], "g", "{}") + "<"
    for i in range(len(text) + 1):
        for j in range(i, len(text) + 1):
            p = RawToolCallParser(fmt)
            out = p.feed(text[:i]) + p.feed(text[i:j]) + p.feed(text[j:]) + p.finish()
            assert out == "a<b c<<", (i, j, out)
            assert [call(c) for c in p.calls] == [("f", '{"x": "<|"}'), ("g", "{}")]
