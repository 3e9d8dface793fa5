"""The bundled scripted engine: a real OpenAI-compatible server, read with the real SDK."""
from __future__ import annotations

import http.client
import json
import subprocess
import sys
import urllib.parse

import openai
import pytest

from lazystream.engine import (Deltas, Engine, EngineError, Faults, Request, Script, ToolCall,
                                   Turn, demo_policy, echo, tokenize)

USER = [{"role": "user", "content": "hi"}]


def client(base_url: str, **kw) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0, **kw)


def stream_deltas(base_url: str, **kw) -> list[dict]:
    """Every chunk's delta (and finish reason / usage) as plain dicts, in order."""
    out = []
    for chunk in client(base_url).chat.completions.create(model="m", messages=USER, stream=True, **kw):
        if chunk.usage is not None:
            out.append({"usage": chunk.usage.model_dump(include={"prompt_tokens", "completion_tokens",
                                                                  "total_tokens"})})
        for choice in chunk.choices:
            d = choice.delta.model_dump(exclude_none=True)
            if choice.finish_reason:
                d["finish_reason"] = choice.finish_reason
            out.append(d)
    return out


# -- tokeniser --------------------------------------------------------------------------
def test_tokenize_keeps_leading_spaces_and_splits_punctuation():
    assert tokenize("To get to the other side of the frying pan!") == [
        "To", " get", " to", " the", " other", " side", " of", " the", " frying", " pan", "!"]
    assert tokenize("10 degrees Celsius, and 东京.\n") == [
        "10", " degrees", " Celsius", ",", " and", " 东", "京", ".", "\n"]


def test_tokenize_round_trips_any_text():
    text = "  a\tb__c  d!?\n\n 中文 x "
    assert "".join(tokenize(text)) == text


# -- serving ------------------------------------------------------------------------------
def test_stream_sends_role_then_tokens_then_finish_then_usage():
    with Engine("Hello there, world!") as url:
        assert stream_deltas(url, stream_options={"include_usage": True}) == [
            {"role": "assistant", "content": ""},
            {"content": "Hello"}, {"content": " there"}, {"content": ","}, {"content": " world"},
            {"content": "!"},
            {"finish_reason": "stop"},
            {"usage": {"prompt_tokens": 1, "completion_tokens": 5, "total_tokens": 6}},
        ]


def test_stream_without_include_usage_sends_no_usage_chunk():
    with Engine("Hi") as url:
        assert stream_deltas(url) == [{"role": "assistant", "content": ""}, {"content": "Hi"},
                                      {"finish_reason": "stop"}]


def test_send_usage_false_never_sends_usage():
    with Engine("Hi", send_usage=False) as url:
        assert {"usage"} not in [set(d) for d in stream_deltas(url, stream_options={"include_usage": True})]


def test_raw_sse_is_openai_format_and_ends_with_done():
    with Engine("Hi") as url:
        parts = urllib.parse.urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
        conn.request("POST", "/v1/chat/completions", json.dumps(
            {"model": "m", "messages": USER, "stream": True}), {"Content-Type": "application/json"})
        response = conn.getresponse()
        assert response.status == 200
        assert response.getheader("Content-Type").startswith("text/event-stream")
        body = response.read().decode()
        conn.close()
    events = [e for e in body.split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(e[len("data: "):]) for e in events[:-1]]
    assert [c["object"] for c in chunks] == ["chat.completion.chunk"] * 3
    assert len({c["id"] for c in chunks}) == 1
    assert [c["choices"][0]["delta"] for c in chunks] == [
        {"role": "assistant", "content": ""}, {"content": "Hi"}, {}]
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None, None, "stop"]


def test_chunk_size_groups_tokens():
    with Engine("a b c d e", chunk_size=2) as url:
        assert [d.get("content") for d in stream_deltas(url)][1:-1] == ["a b", " c d", " e"]


def test_tokens_fix_exact_chunk_boundaries():
    with Engine(Turn(tokens=["He", "llo wor", "ld"])) as url:
        assert [d.get("content") for d in stream_deltas(url)][1:-1] == ["He", "llo wor", "ld"]


def test_tool_calls_stream_in_openai_delta_format():
    turn = Turn("Checking.", tool_calls=[ToolCall("get_weather", {"city": "Paris"}, id="call_1"),
                                         ToolCall("get_time", {}, id="call_2")])
    with Engine(turn) as url:
        assert stream_deltas(url)[1:] == [
            {"content": "Checking"}, {"content": "."},
            {"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                             "function": {"name": "get_weather", "arguments": ""}}]},
            *[{"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}
              for piece in ['{', '"', 'city', '"', ':', ' "', 'Paris', '"', '}']],
            {"tool_calls": [{"index": 1, "id": "call_2", "type": "function",
                             "function": {"name": "get_time", "arguments": ""}}]},
            {"tool_calls": [{"index": 1, "function": {"arguments": "{"}}]},
            {"tool_calls": [{"index": 1, "function": {"arguments": "}"}}]},
            {"finish_reason": "tool_calls"},
        ]


def test_reasoning_content_streams_before_content():
    with Engine(Turn("Yes.", reasoning_content="Let me think")) as url:
        assert stream_deltas(url)[1:] == [
            {"reasoning_content": "Let"}, {"reasoning_content": " me"},
            {"reasoning_content": " think"}, {"content": "Yes"}, {"content": "."},
            {"finish_reason": "stop"}]


def test_non_streaming_reply_has_message_tool_calls_and_usage():
    with Engine(Turn("ok", tool_calls=[ToolCall("f", {"x": 1}, id="call_9")],
                     reasoning_content="hm")) as url:
        r = client(url).chat.completions.create(model="m", messages=USER)
    assert r.choices[0].finish_reason == "tool_calls"
    message = r.choices[0].message
    assert message.content == "ok"
    assert message.model_extra["reasoning_content"] == "hm"
    assert [c.model_dump(include={"id", "type", "function"}) for c in message.tool_calls] == [
        {"id": "call_9", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}}]
    # hm | ok | f | { " x " : " 1" }: 1 + 1 + 1 + 7 tokens
    assert r.usage.prompt_tokens == 1 and r.usage.completion_tokens == 10


def test_models_endpoint_lists_the_model():
    with Engine("x", model="my-model") as url:
        assert [m.id for m in client(url).models.list()] == ["my-model"]


def test_deltas_reply_streams_exactly_the_given_deltas():
    deltas = [{"content": "a"}, {"tool_calls": [{"index": 0, "id": "c", "type": "function",
                                                 "function": {"name": "f", "arguments": "{}"}}]}]
    with Engine(Deltas(deltas, finish_reason="tool_calls")) as url:
        assert stream_deltas(url)[1:] == deltas + [{"finish_reason": "tool_calls"}]
        with pytest.raises(openai.BadRequestError, match="can only be streamed"):
            client(url).chat.completions.create(model="m", messages=USER)


# -- policies -----------------------------------------------------------------------------
def test_script_answers_in_order_then_fails_clearly():
    with Engine(["one", "two"]) as url:
        c = client(url)
        got = [c.chat.completions.create(model="m", messages=USER).choices[0].message.content
               for _ in range(2)]
        assert got == ["one", "two"]
        with pytest.raises(openai.BadRequestError, match="script exhausted: request 3 but the script has 2"):
            c.chat.completions.create(model="m", messages=USER)


def test_looping_script_starts_over():
    with Engine(Script(["a", "b"], loop=True)) as url:
        c = client(url)
        assert [c.chat.completions.create(model="m", messages=USER).choices[0].message.content
                for _ in range(3)] == ["a", "b", "a"]


def test_policy_callable_receives_the_request():
    seen: list[Request] = []

    def policy(request: Request) -> str:
        seen.append(request)
        return f"{request.model}:{request.last_user}:{request.tool_names}:{request.params['temperature']}"

    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    engine = Engine(policy)
    with engine as url:
        r = client(url).chat.completions.create(model="m1", messages=USER, tools=tools, temperature=0.5)
    assert r.choices[0].message.content == "m1:hi:['f']:0.5"
    assert seen[0].messages == USER and seen[0].tools == tools and seen[0].stream is False
    assert engine.requests == seen


def test_policy_may_return_tool_calls_as_dicts():
    with Engine(lambda r: {"content": "x", "tool_calls": [{"name": "f", "arguments": {"a": 1}}]}) as url:
        m = client(url).chat.completions.create(model="m", messages=USER).choices[0].message
    assert (m.content, m.tool_calls[0].function.name, m.tool_calls[0].function.arguments) == (
        "x", "f", '{"a": 1}')


def test_engine_error_from_policy_becomes_that_status():
    def policy(request):
        raise EngineError(404, "no such model", type="model_not_found")

    with Engine(policy) as url:
        with pytest.raises(openai.NotFoundError, match="no such model"):
            client(url).chat.completions.create(model="m", messages=USER)


def test_policy_bug_is_a_500_and_recorded():
    engine = Engine(lambda r: 1 / 0)
    with engine as url:
        with pytest.raises(openai.InternalServerError, match="policy raised ZeroDivisionError"):
            client(url).chat.completions.create(model="m", messages=USER)
    assert [type(e) for e in engine.errors] == [ZeroDivisionError]


def test_bad_policy_reply_is_a_500_naming_the_value():
    with Engine(lambda r: 42) as url:
        with pytest.raises(openai.InternalServerError, match="policy returned 42"):
            client(url).chat.completions.create(model="m", messages=USER)


def test_echo_policy_and_demo_policy():
    tools = [{"type": "function", "function": {
        "name": "get_current_weather", "description": "Get the current weather in a given location",
        "parameters": {"type": "object", "properties": {
            "location": {"type": "string"}, "unit": {"type": "string", "enum": ["fahrenheit", "celsius"]}},
            "required": ["location"]}}}]
    q = "What's the weather like today in celsius in Tokyo and Paris."
    ask = Request(messages=[{"role": "user", "content": q}], tools=tools, model="m", stream=False, params={})
    assert echo(ask) == q
    turn = demo_policy(ask)
    assert [(c.name, c.arguments) for c in turn.tool_calls] == [
        ("get_current_weather", {"location": "Tokyo", "unit": "celsius"}),
        ("get_current_weather", {"location": "Paris", "unit": "celsius"})]
    results = [{"role": "tool", "tool_call_id": "1", "name": "get_current_weather",
                "content": json.dumps({"location": "Tokyo", "temperature": "10", "unit": "celsius"})},
               {"role": "tool", "tool_call_id": "2", "name": "get_current_weather",
                "content": json.dumps({"location": "Paris", "temperature": "22", "unit": "celsius"})}]
    answer = Request(messages=ask.messages + [{"role": "assistant", "content": ""}] + results,
                     tools=tools, model="m", stream=False, params={})
    assert demo_policy(answer) == ("The current weather in Tokyo is 10 degrees Celsius, "
                                   "and in Paris, it is 22 degrees Celsius.")


# -- faults ---------------------------------------------------------------------------------
def test_fail_first_answers_with_the_status_then_serves():
    engine = Engine("ok", faults=Faults(fail_first=2, status=429, retry_after=1.5))
    with engine as url:
        c = client(url)
        for _ in range(2):
            with pytest.raises(openai.RateLimitError) as info:
                c.chat.completions.create(model="m", messages=USER)
            assert info.value.response.headers["retry-after"] == "1.5"
        assert c.chat.completions.create(model="m", messages=USER).choices[0].message.content == "ok"


def test_drop_first_closes_the_connection():
    with Engine("ok", faults=Faults(drop_first=1)) as url:
        c = client(url)
        with pytest.raises(openai.APIConnectionError):
            c.chat.completions.create(model="m", messages=USER)
        assert c.chat.completions.create(model="m", messages=USER).choices[0].message.content == "ok"


def test_cut_after_k_tokens_breaks_the_stream():
    got = []
    with Engine("one two three four five", faults=Faults(cut_after=3)) as url:
        with pytest.raises(openai.APIConnectionError):
            for chunk in client(url).chat.completions.create(model="m", messages=USER, stream=True):
                got.append(chunk.choices[0].delta.content)
    assert got == ["", "one", " two", " three"]


def test_malformed_tool_json_cuts_the_arguments():
    with Engine(ToolCall("f", {"a": 1}), faults=Faults(malformed_tool_json=True)) as url:
        m = client(url).chat.completions.create(model="m", messages=USER).choices[0].message
    assert m.tool_calls[0].function.arguments == '{"a": 1'


def test_stall_longer_than_the_client_timeout():
    with Engine("one two three", faults=Faults(stall=5, stall_after=1)) as url:
        got = []
        with pytest.raises(openai.APITimeoutError):
            for chunk in client(url, timeout=0.3).chat.completions.create(model="m", messages=USER,
                                                                            stream=True):
                got.append(chunk.choices[0].delta.content)
    assert got == ["", "one"]


def test_stall_before_the_response():
    with Engine("x", faults=Faults(stall=5)) as url:
        with pytest.raises(openai.APITimeoutError):
            client(url, timeout=0.3).chat.completions.create(model="m", messages=USER)


def test_api_key_is_enforced_when_set():
    with Engine("x", api_key="secret") as url:
        with pytest.raises(openai.AuthenticationError):
            client(url).chat.completions.create(model="m", messages=USER)
        ok = openai.OpenAI(base_url=url, api_key="secret", max_retries=0)
        assert ok.chat.completions.create(model="m", messages=USER).choices[0].message.content == "x"


def test_bad_request_body_is_a_400():
    with Engine("x") as url:
        with pytest.raises(openai.BadRequestError, match="'messages' must be a list"):
            client(url).chat.completions.create(model="m", messages="nope")  # type: ignore[arg-type]


# -- raw-text mode ---------------------------------------------------------------------------
@pytest.mark.parametrize("fmt, expected", [
    ("internlm2", 'Sure.<|action_start|><|plugin|>\n{"name": "f", "parameters": {"a": 1}}<|action_end|>'),
    ("qwen", 'Sure.<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n</tool_call>'),
])
def test_raw_text_mode_writes_tool_calls_as_special_tokens(fmt, expected):
    with Engine(Turn("Sure.", tool_calls=[ToolCall("f", {"a": 1})]), tool_call_format=fmt) as url:
        deltas = stream_deltas(url)
        m = client(url).chat.completions.create(model="m", messages=USER).choices[0].message
    assert "".join(d.get("content", "") for d in deltas) == expected
    assert not any("tool_calls" in d for d in deltas)
    assert deltas[-1] == {"finish_reason": "stop"}
    start = expected[len("Sure."):].split("\n")[0]
    assert {"content": start} in deltas   # the special token is one token
    assert (m.content, m.tool_calls) == (expected, None)


# -- configuration errors -----------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, match", [
    ({"chunk_size": 0}, "chunk_size must be an int >= 1, got 0"),
    ({"tokens_per_second": -1}, "tokens_per_second must be > 0"),
    ({"ttft": -1}, "ttft must be seconds >= 0"),
    ({"faults": {"fail_first": 1}}, "faults must be a Faults"),
    ({"tool_call_format": "llama"}, "tool_call_format 'llama' is unknown; use one of internlm2, qwen"),
])
def test_bad_engine_settings_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Engine("x", **kwargs)


def test_bad_faults_and_turns_raise():
    with pytest.raises(ValueError, match="status must be an HTTP error code"):
        Faults(status=200)
    with pytest.raises(ValueError, match="cut_after must be an int >= 0, got -1"):
        Faults(cut_after=-1)
    with pytest.raises(ValueError, match="ToolCall: name must be a non-empty string"):
        ToolCall("")
    with pytest.raises(ValueError, match="content 'a' differs from the joined tokens 'b'"):
        Turn("a", tokens=["b"])


def test_base_url_before_start_raises():
    with pytest.raises(RuntimeError, match="not started"):
        Engine("x").base_url


def test_stop_closes_the_port_and_kept_alive_connections():
    engine = Engine("x")
    url = engine.start()
    kept = client(url)
    assert kept.chat.completions.create(model="m", messages=USER).choices[0].message.content == "x"
    engine.stop()
    for c in (kept, client(url)):
        with pytest.raises(openai.APIConnectionError):
            c.chat.completions.create(model="m", messages=USER)


def test_restart_serves_again():
    engine = Engine("x")
    engine.start()
    engine.stop()
    with engine as url:
        assert client(url).chat.completions.create(model="m", messages=USER).choices[0].message.content == "x"


def test_cli_serves_the_engine():
    proc = subprocess.Popen([sys.executable, "-m", "lazystream", "engine", "--port", "0",
                             "--policy", "echo"], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("lazystream engine (scripted, not a model) serving at http://127.0.0.1:")
        url = line.split()[-1]
        r = client(url).chat.completions.create(model="m", messages=[{"role": "user", "content": "ping"}])
        assert r.choices[0].message.content == "ping"
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()
