"""FunctionCall and FunctionCallAgent end to end: the seed's weather agent on the bundled
engine over real HTTP, its stream and traces, concurrency, parallel calls, faults, the
iteration limit and raw-text tool calls."""
from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import Literal

import pytest

import lazystream
import lazystream.llm
from lazystream.engine import Engine, Script, ToolCall, Turn, tokenize
from lazystream.llm.online import OnlineChatModule
from lazystream.queue import read_session
from lazystream.tools import FunctionCall, FunctionCallAgent, ToolCallLimitError, fc_register

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
import weather_agent  # noqa: E402  (registers the seed's two tools in group "tool")
from weather_policy import CITIES, WeatherPolicy  # noqa: E402

QUERY = "What's the weather like today in celsius in Tokyo and Paris."
ANSWER = "The current weather in Tokyo is 10 degrees Celsius, and in Paris, it is 22 degrees Celsius."
SEED_TOOLS = ["get_current_weather", "get_n_day_weather_forecast"]


def llm_for(url: str, **kwargs) -> OnlineChatModule:
    return OnlineChatModule(model="lazystream-engine", base_url=url, api_key="unused", **kwargs)


def kinds(sid: str, *wanted: str):
    return [e for e in read_session(sid) if e.kind in wanted]


def run_in_executor(agent, query):
    """The seed's pattern: submit to lazystream's pool, read the queues until it is done."""
    tokens, traces = [], []
    with lazystream.ThreadPoolExecutor(1) as executor:
        future = executor.submit(agent, query)
        for queue, items in lazystream.follow(future, queues=("lazy_stream", "lazy_trace")):
            (tokens if queue == "lazy_stream" else traces).extend(items)
    return tokens, traces, future.result()


# --- the seed, exact -------------------------------------------------------------------------

def test_seed_streaming_form_streams_exactly_the_answer_tokens():
    with Engine(WeatherPolicy()) as url:
        agent = FunctionCallAgent(llm_for(url, stream=True), SEED_TOOLS)
        with lazystream.session():
            tokens, traces, ret = run_in_executor(agent, QUERY)
    assert ret == ANSWER
    assert tokens == tokenize(ANSWER)   # in order, one event per token, no tool-call JSON
    assert traces == []


def test_seed_trace_form_traces_request_results_round_then_answer():
    with Engine(WeatherPolicy()) as url:
        llm = llm_for(url, stream=True, return_trace=True)
        agent = FunctionCallAgent(llm, SEED_TOOLS, return_trace=True)
        with lazystream.session() as sid:
            tokens, traces, ret = run_in_executor(agent, QUERY)
    assert ret == ANSWER and "".join(tokens) == ANSWER
    [tokyo, paris] = [e.data for e in kinds(sid, "tool_call")]
    calls = [{"id": c["id"], "type": "function",
              "function": {"name": "get_current_weather", "arguments": json.dumps(c["arguments"])}}
             for c in (tokyo, paris)]
    assert [c["arguments"] for c in (tokyo, paris)] == [
        {"location": "Tokyo", "unit": "celsius"}, {"location": "Paris", "unit": "celsius"}]
    tokyo_result = '{"location": "Tokyo", "temperature": "10", "unit": "celsius"}'
    paris_result = '{"location": "Paris", "temperature": "22", "unit": "celsius"}'
    request = {"role": "assistant", "content": "", "tool_calls": calls}
    round_messages = [{"role": "user", "content": QUERY}, request,
                      {"role": "tool", "content": tokyo_result, "tool_call_id": tokyo["id"],
                       "name": "get_current_weather"},
                      {"role": "tool", "content": paris_result, "tool_call_id": paris["id"],
                       "name": "get_current_weather"}]
    seed_request = [{"id": c["id"], "type": "function",
                     "function": {"name": "get_current_weather", "arguments": c["arguments"]}}
                    for c in (tokyo, paris)] + [""]
    assert traces == [str(seed_request), tokyo_result, paris_result, str(round_messages),
                      ANSWER, ANSWER, ANSWER]
    # The same, as structured events with lineages and call ids.
    assert [(e.kind, e.ns, e.data.get("id") if e.kind != "trace" else None)
            for e in kinds(sid, "tool_call", "tool_result", "trace")] == [
        ("tool_call", ("functioncallagent", "function_call", "llm"), tokyo["id"]),
        ("tool_call", ("functioncallagent", "function_call", "llm"), paris["id"]),
        ("trace", ("functioncallagent", "function_call", "llm"), None),
        ("tool_result", ("functioncallagent", "function_call", "get_current_weather"), tokyo["id"]),
        ("trace", ("functioncallagent", "function_call", "get_current_weather"), None),
        ("tool_result", ("functioncallagent", "function_call", "get_current_weather"), paris["id"]),
        ("trace", ("functioncallagent", "function_call", "get_current_weather"), None),
        ("trace", ("functioncallagent", "function_call"), None),
        ("trace", ("functioncallagent", "function_call", "llm"), None),
        ("trace", ("functioncallagent", "function_call"), None),
        ("trace", ("functioncallagent",), None)]


def test_one_call_per_round_traces_each_round_in_order():
    with Engine(WeatherPolicy(parallel=False)) as url:
        agent = FunctionCallAgent(llm_for(url, stream=True), SEED_TOOLS, return_trace=True)
        with lazystream.session() as sid:
            tokens, traces, ret = run_in_executor(agent, QUERY)
    assert ret == ANSWER and "".join(tokens) == ANSWER
    ids = [e.data["id"] for e in kinds(sid, "tool_call")]
    tokyo_result = '{"location": "Tokyo", "temperature": "10", "unit": "celsius"}'
    paris_result = '{"location": "Paris", "temperature": "22", "unit": "celsius"}'

    def request(call_id, city):
        return [{"id": call_id, "type": "function", "function": {
            "name": "get_current_weather", "arguments": {"location": city, "unit": "celsius"}}}, ""]

    # The model does not trace here, so the round traces the parsed request itself.
    assert [t for t in traces if not t.startswith("[{'role'")] == [
        str(request(ids[0], "Tokyo")), tokyo_result,
        str(request(ids[1], "Paris")), paris_result, ANSWER, ANSWER]
    rounds = [i for i, t in enumerate(traces) if t.startswith("[{'role'")]
    assert rounds == [2, 5]
    assert traces[5].count("'role': 'tool'") == 2


def test_the_conversation_is_kept_as_openai_messages():
    engine = Engine(WeatherPolicy(parallel=False))
    with engine as url:
        ret = FunctionCallAgent(llm_for(url), SEED_TOOLS)(QUERY)
    assert ret == ANSWER
    last = engine.requests[-1].messages
    assert [m["role"] for m in last] == ["user", "assistant", "tool", "assistant", "tool"]
    for assistant, tool in ((last[1], last[2]), (last[3], last[4])):
        [call] = assistant["tool_calls"]
        assert call["type"] == "function" and isinstance(call["function"]["arguments"], str)
        assert (tool["tool_call_id"], tool["name"]) == (call["id"], "get_current_weather")
    assert [t["function"]["name"] for t in engine.requests[0].tools] == SEED_TOOLS


def test_nothing_is_written_when_neither_streaming_nor_tracing():
    with Engine(WeatherPolicy()) as url:
        agent = FunctionCallAgent(llm_for(url), SEED_TOOLS)
        with lazystream.session() as sid:
            assert agent(QUERY) == ANSWER
    assert [e.kind for e in read_session(sid)] == ["end"]


def test_a_traced_agent_on_a_non_streaming_model_writes_the_tool_call_events_itself():
    with Engine(WeatherPolicy()) as url:
        agent = FunctionCallAgent(llm_for(url), SEED_TOOLS, return_trace=True)
        with lazystream.session() as sid:
            assert agent(QUERY) == ANSWER
    events = kinds(sid, "tool_call", "tool_result")
    assert [(e.kind, e.ns[-1], e.data["name"]) for e in events] == [
        ("tool_call", "function_call", "get_current_weather"),
        ("tool_call", "function_call", "get_current_weather"),
        ("tool_result", "get_current_weather", "get_current_weather"),
        ("tool_result", "get_current_weather", "get_current_weather")]
    assert [e.data["id"] for e in events[:2]] == [e.data["id"] for e in events[2:]]
    assert kinds(sid, "text") == []


def test_the_example_prints_the_seed_shape(monkeypatch, capsys):
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "LAZYSTREAM_MODEL"):
        monkeypatch.delenv(var, raising=False)   # restored after the test
    assert weather_agent.main(["--tps", "2000"]) == 0
    lines = capsys.readouterr().out.splitlines()
    sid = lines[1].split()[2].rstrip(":")
    assert lines[1] == (f"# session {sid}: follow it from another terminal with `lazystream tail "
                        f"{sid} --text`; summarize it afterwards with `lazystream show {sid}`")
    assert lazystream.read_session(sid)[-1].data == {"status": "ok"}   # followable to its end
    rets = [line for line in lines if line.startswith("ret: ")]
    assert rets == [f"ret: {ANSWER}", f"ret: {ANSWER}"]
    second = lines.index("# --- streaming + return_trace ---")
    first_outputs = "".join(line.removeprefix("output: ") for line in lines[:second]
                            if line.startswith("output: "))
    assert first_outputs == ANSWER
    traces = "".join(line.removeprefix("trace: ") for line in lines[second:]
                     if line.startswith("trace: "))
    assert traces.startswith("[{'id': 'call_")
    assert traces.endswith(ANSWER * 3)
    assert not any("trace:" in line for line in lines[:second])


def test_the_example_uses_the_configured_server_when_openai_api_key_is_set(monkeypatch, capsys):
    engine = Engine(WeatherPolicy(), model="served-model")
    with engine as url:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        monkeypatch.setenv("OPENAI_BASE_URL", url)
        monkeypatch.setenv("LAZYSTREAM_MODEL", "served-model")
        with lazystream.session():
            assert weather_agent.main(["--stream"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"# model: served-model at {url}"
    assert out[-1] == f"ret: {ANSWER}"
    assert [r.model for r in engine.requests] == ["served-model", "served-model"]


# --- concurrency -----------------------------------------------------------------------------

@fc_register("agent_tests")
def get_current_weather(location: str, unit: str = "celsius"):
    """Get the current weather in a city, made up from its name.

    Args:
        location: The city.
        unit: The temperature unit.
    """
    return json.dumps({"location": location, "temperature": str(sum(map(ord, location)) % 40),
                       "unit": unit})


def test_sixteen_concurrent_agents_in_their_own_sessions_do_not_cross_talk():
    cities = list(CITIES[:16])
    with Engine(WeatherPolicy(), tokens_per_second=500) as url:   # paced: streams overlap
        llm = llm_for(url, stream=True, return_trace=True)
        agent = FunctionCallAgent(llm, ["agent_tests.get_current_weather"], return_trace=True)

        def ask(city):
            with lazystream.session() as sid:
                return sid, agent(f"What's the weather like today in {city}?")

        with lazystream.ThreadPoolExecutor(16) as pool:
            results = list(pool.map(ask, cities))
    assert len({sid for sid, _ in results}) == 16
    for city, (sid, ret) in zip(cities, results):
        degrees = sum(map(ord, city)) % 40
        assert ret == f"The current weather in {city} is {degrees} degrees Celsius."
        assert "".join(e.value for e in kinds(sid, "text")) == ret
        traces = [e.value for e in kinds(sid, "trace")]
        assert len(traces) == 6 and traces[-3:] == [ret, ret, ret]
        others = [c for c in cities if c != city and c not in city]
        assert not any(other in t for t in traces for other in others)
        assert read_session(sid)[-1].data == {"status": "ok"}


# --- parallel tool calls -----------------------------------------------------------------------

meeting = threading.Barrier(3, timeout=10)


@fc_register("agent_tests")
def rendezvous(location: str, unit: str = "celsius"):
    """Wait until all three calls of the turn are running, then answer.

    Args:
        location: The city.
        unit: The unit.
    """
    meeting.wait()   # breaks (BrokenBarrierError) unless all three run at the same time
    return json.dumps({"location": location, "temperature": "5", "unit": unit})


def test_several_calls_in_one_turn_run_in_parallel_and_return_in_call_order():
    meeting.reset()
    engine = Engine(WeatherPolicy(tool="rendezvous"))
    question = "Weather in celsius in Oslo, Lima and Cairo?"
    with engine as url:
        agent = FunctionCallAgent(llm_for(url), ["agent_tests.rendezvous"])
        ret = agent(question)
    assert ret == ("The current weather in Oslo is 5 degrees Celsius, in Lima, it is 5 degrees "
                   "Celsius, and in Cairo, it is 5 degrees Celsius.")
    messages = engine.requests[1].messages
    ids = [c["id"] for c in messages[1]["tool_calls"]]
    assert len(ids) == 3 and [m["tool_call_id"] for m in messages[2:]] == ids
    assert [json.loads(m["content"])["location"] for m in messages[2:]] == ["Oslo", "Lima", "Cairo"]


# --- faults ------------------------------------------------------------------------------------

release = threading.Event()


@fc_register("faults")
def lookup(city: str, unit: Literal["celsius", "fahrenheit"] = "celsius") -> str:
    """Look the weather up.

    Args:
        city: The city.
        unit: The unit.
    """
    if city == "Atlantis":
        raise LookupError("no such city: Atlantis")
    if city == "Slowtown":
        release.wait(30)
    return f"{city}: 20 degrees {unit}"


def report_tool_results(request):
    """A policy that answers with the tool results it was given, one per line."""
    return "\n".join(m["content"] for m in request.tool_results)


def test_every_bad_call_goes_back_to_the_model_as_text_and_leaves_an_error_trace():
    turn = Turn(tool_calls=[
        ToolCall("lookup", {"city": "Paris"}, id="ok"),
        ToolCall("teleport", {"city": "Paris"}, id="unknown"),
        ToolCall("lookup", '{"city": "Paris"', id="malformed"),
        ToolCall("lookup", {"city": "Paris", "unit": "kelvin"}, id="invalid"),
        ToolCall("lookup", {"city": "Atlantis"}, id="raises"),
        ToolCall("lookup", {"city": "Slowtown"}, id="slow"),
    ])
    calls = iter([turn])

    def policy(request):
        return next(calls, None) or report_tool_results(request)

    release.clear()
    try:
        with Engine(policy) as url:
            agent = FunctionCallAgent(llm_for(url, stream=True), ["faults.lookup"], tool_timeout=0.3)
            with lazystream.session() as sid:
                tokens, _, ret = run_in_executor(agent, "weather?")
    finally:
        release.set()
    expected = [
        "Paris: 20 degrees celsius",
        "Error: there is no tool named 'teleport'; available tools: lookup.",
        "Error: the arguments are not valid JSON (Expecting ',' delimiter at position 16): "
        "{\"city\": \"Paris\" — call 'lookup' again with a JSON object of arguments.",
        "Error: invalid arguments for 'lookup': 'unit' must be one of \"celsius\", "
        "\"fahrenheit\", got \"kelvin\". Call it again with corrected arguments.",
        "Error: tool 'lookup' failed: LookupError: no such city: Atlantis",
        "Error: tool 'lookup' did not finish within 0.3 s.",
    ]
    assert ret.split("\n") == expected and "".join(tokens) == ret
    errors = [(e.ns[-1], e.data["error"]["type"], e.data["text"]) for e in kinds(sid, "trace")]
    assert errors == [("teleport", "UnknownTool", expected[1]),
                      ("lookup", "MalformedArguments", expected[2]),
                      ("lookup", "InvalidArguments", expected[3]),
                      ("lookup", "LookupError", expected[4]),
                      ("lookup", "ToolTimeout", expected[5])]
    assert [e.data["id"] for e in kinds(sid, "tool_result") if e.data["error"]] == [
        "unknown", "malformed", "invalid", "raises", "slow"]
    assert kinds(sid, "error") == []
    assert read_session(sid)[-1].data == {"status": "ok"}


def test_the_model_can_correct_a_bad_call():
    engine = Engine(_script_then(report_tool_results, [
        ToolCall("lookup", {"city": "Rome", "unit": "kelvin"}),
        ToolCall("lookup", {"city": "Rome", "unit": "celsius"})]))
    with engine as url:
        ret = FunctionCallAgent(llm_for(url), ["faults.lookup"])("Rome?")
    assert ret == "Rome: 20 degrees celsius"
    assert engine.requests[1].tool_results[0]["content"].startswith(
        "Error: invalid arguments for 'lookup': 'unit' must be one of")


def _script_then(policy, turns):
    pending = list(turns)
    lock = threading.Lock()

    def run(request):
        with lock:
            if pending:
                return pending.pop(0)
        return policy(request)
    return run


# --- the iteration limit ---------------------------------------------------------------------

def test_the_round_limit_raises_a_clear_error_and_writes_one_error_event():
    engine = Engine(Script([ToolCall("lookup", {"city": "Rome"})], loop=True))
    with engine as url:
        agent = FunctionCallAgent(llm_for(url, stream=True), ["faults.lookup"], max_retries=3)
        with lazystream.session() as sid:
            with lazystream.ThreadPoolExecutor(1) as pool:
                future = pool.submit(agent, "Rome?")
                with pytest.raises(ToolCallLimitError) as info:
                    future.result(timeout=30)
    assert str(info.value) == ("FunctionCallAgent: the model still asked for tools (lookup) after "
                               "max_retries=3 rounds; raise max_retries, or check the tool results "
                               "the model keeps retrying")
    assert len(engine.requests) == 3
    assert [e.data for e in kinds(sid, "error")] == [
        {"type": "ToolCallLimitError", "message": str(info.value)}]


def test_the_round_limit_writes_its_error_event_without_an_executor_too():
    with Engine(Script([ToolCall("lookup", {"city": "Rome"})], loop=True)) as url:
        agent = FunctionCallAgent(llm_for(url), ["faults.lookup"], max_retries=1)
        with pytest.raises(ToolCallLimitError):
            with lazystream.session() as sid:
                agent("Rome?")
    assert [e.data["type"] for e in kinds(sid, "error")] == ["ToolCallLimitError"]
    assert read_session(sid)[-1].data["status"] == "error"


# --- raw-text tool calls -----------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["internlm2", "qwen"])
def test_raw_text_tool_calls_through_trainable_module_never_reach_the_stream(fmt):
    policy = WeatherPolicy()
    preface = "Let me check.\n"

    def chatty(request):
        """The weather policy, with visible text before its (raw-text) tool calls."""
        reply = policy(request)
        return Turn(content=preface, tool_calls=reply) if isinstance(reply, list) else reply

    engine = Engine(chatty, tool_call_format=fmt)
    llm = lazystream.llm.TrainableModule("internlm2-chat-20b", stream=True, deploy=engine,
                                         tool_call_format=fmt).start()
    try:
        agent = FunctionCallAgent(llm, SEED_TOOLS, return_trace=True)
        with lazystream.session() as sid:
            tokens, traces, ret = run_in_executor(agent, QUERY)
    finally:
        llm.stop()
    assert ret == ANSWER
    assert "".join(tokens) == preface + ANSWER   # no special token, no tool-call JSON
    calls = [e.data for e in kinds(sid, "tool_call")]
    assert [(c["name"], c["arguments"]) for c in calls] == [
        ("get_current_weather", {"location": "Tokyo", "unit": "celsius"}),
        ("get_current_weather", {"location": "Paris", "unit": "celsius"})]
    # The model does not trace; the round traces the request with parsed arguments.
    assert traces[0] == str([{"id": c["id"], "type": "function", "function": {
        "name": c["name"], "arguments": c["arguments"]}} for c in calls] + [preface])
    assert traces[1:3] == ['{"location": "Tokyo", "temperature": "10", "unit": "celsius"}',
                           '{"location": "Paris", "temperature": "22", "unit": "celsius"}']
    # The model wrote its calls as text: the conversation still holds OpenAI tool_calls.
    messages = engine.requests[1].messages
    assert messages[1]["content"] == preface
    assert [c["id"] for c in messages[1]["tool_calls"]] == [m["tool_call_id"] for m in messages[2:]]


# --- construction errors -----------------------------------------------------------------------

def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="max_retries must be an int >= 1"):
        FunctionCallAgent(lambda *a, **k: "", SEED_TOOLS, max_retries=0)
    with pytest.raises(ValueError, match="tools: the list is empty"):
        FunctionCallAgent(lambda *a, **k: "", [])
    with pytest.raises(TypeError, match="llm must be a chat module"):
        FunctionCall("gpt-4o", SEED_TOOLS)
    with pytest.raises(TypeError, match="input must be the user's question"):
        FunctionCall(lambda *a, **k: "", SEED_TOOLS)(42)
