"""LazyLLM's agent-side API on lazystream: ``llm_chat_history``, ``fc_register`` without a
docstring or under another name, ``FunctionCall``/``FunctionCallAgent`` with a history, and
``ReactAgent`` — each checked with LazyLLM's documented example or expected output, on the
bundled engine over real HTTP."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import lazystream
from lazystream.llm import LLMConfigError
from lazystream.engine import Engine, tokenize
from lazystream.llm.online import OnlineChatModule
from lazystream.queue import read_session
from lazystream.tools import (FunctionCall, FunctionCallAgent, ReactAgent, ToolCallLimitError,
                              fc_register)
from lazystream.tools._registry import registered_tools

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
import weather_agent  # noqa: E402,F401  (registers the seed's weather tools in group "tool")
from react_policy import ArithmeticReactPolicy  # noqa: E402
from weather_policy import WeatherPolicy  # noqa: E402

HISTORY_PAIRS = [["Hi, I am Ada.", "Hello Ada! How can I help?"]]
HISTORY_DICTS = [{"role": "user", "content": "Hi, I am Ada."},
                 {"role": "assistant", "content": "Hello Ada! How can I help?"}]


def llm_for(url: str, **kwargs) -> OnlineChatModule:
    return OnlineChatModule(model="lazystream-engine", base_url=url, api_key="unused", **kwargs)


# --- llm_chat_history ---------------------------------------------------------------------

@pytest.mark.parametrize("history", [HISTORY_PAIRS, HISTORY_DICTS], ids=["pairs", "dicts"])
def test_llm_chat_history_is_sent_between_the_system_prompt_and_the_query(history):
    engine = Engine("Your name is Ada.")
    with engine as url:
        llm = llm_for(url, system_prompt="Be brief.")
        assert llm("What is my name?", llm_chat_history=history) == "Your name is Ada."
    assert engine.requests[0].messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi, I am Ada."},
        {"role": "assistant", "content": "Hello Ada! How can I help?"},
        {"role": "user", "content": "What is my name?"}]


def test_llm_chat_history_streams_as_usual():
    engine = Engine("Your name is Ada.")
    with engine as url, lazystream.session() as sid:
        llm_for(url, stream=True)("What is my name?", llm_chat_history=HISTORY_PAIRS)
    assert lazystream.FileSystemQueue().dequeue(sid=sid) == tokenize("Your name is Ada.")
    assert engine.requests[0].messages[:2] == HISTORY_DICTS


def test_a_one_element_history_pair_is_a_user_turn_without_answer():
    engine = Engine("ok")
    with engine as url:
        llm_for(url)("go on", llm_chat_history=[["only a question"]])
    assert engine.requests[0].messages == [{"role": "user", "content": "only a question"},
                                           {"role": "user", "content": "go on"}]


def test_bad_history_item_is_named_before_any_request():
    engine = Engine("never")
    with engine as url:
        with pytest.raises(LLMConfigError, match=r"llm_chat_history item 1 is 'oops'; each item must be "
                                                 r"a \[user, assistant\] pair or a message dict"):
            llm_for(url)("q", llm_chat_history=[["a", "b"], "oops"])
    assert engine.requests == []


def test_function_call_agent_takes_a_history():
    engine = Engine(WeatherPolicy())
    with engine as url:
        agent = FunctionCallAgent(llm_for(url), ["get_current_weather"])
        answer = agent("What's the weather like today in celsius in Tokyo?", HISTORY_PAIRS)
    assert answer == "The current weather in Tokyo is 10 degrees Celsius."
    assert [r.messages[:3] for r in engine.requests] == [
        HISTORY_DICTS + [{"role": "user", "content": "What's the weather like today in celsius in Tokyo?"}]] * 2


def test_function_call_returns_the_conversation_with_the_history():
    with Engine(WeatherPolicy()) as url:
        fc = FunctionCall(llm_for(url), ["get_current_weather"])
        messages = fc("What's the weather like today in celsius in Tokyo?", llm_chat_history=HISTORY_DICTS)
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant", "tool"]
    assert messages[:2] == HISTORY_DICTS
    assert json.loads(messages[-1]["content"]) == {"location": "Tokyo", "temperature": "10", "unit": "celsius"}


# --- fc_register ----------------------------------------------------------------------------

def test_fc_register_under_another_name():
    def get_n_day_weather_forecast(location: str, num_days: int):
        """Get an N-day weather forecast

        Args:
            location (str): The city and state, e.g. San Francisco, CA
            num_days (int): The number of days to forecast
        """
        return f"{location}: {num_days} days"

    returned = fc_register("lazyllm_compat")(get_n_day_weather_forecast, "another_get_n_day_weather_forecast")
    assert returned is get_n_day_weather_forecast
    tool = registered_tools("lazyllm_compat")["another_get_n_day_weather_forecast"]
    assert tool.fn is get_n_day_weather_forecast
    assert tool.schema["function"]["name"] == "another_get_n_day_weather_forecast"


def test_fc_register_accepts_a_function_without_docstring():
    def no_doc(city: str, days: int = 1):
        return f"{city}/{days}"

    assert fc_register("lazyllm_compat")(no_doc) is no_doc
    assert registered_tools("lazyllm_compat")["no_doc"].schema == {"type": "function", "function": {
        "name": "no_doc", "description": "",
        "parameters": {"type": "object",
                       "properties": {"city": {"type": "string"},
                                      "days": {"type": "integer", "default": 1}},
                       "required": ["city"]}}}


def test_fc_register_name_must_be_a_string():
    with pytest.raises(lazystream.tools.ToolSchemaError, match=r"the name to register under must be a str, got 3"):
        fc_register("lazyllm_compat")(str.upper, 3)


# --- ReactAgent ---------------------------------------------------------------------------

@fc_register("tool")
def multiply_tool(a: int, b: int) -> int:
    """
    Multiply two integers and return the result integer

    Args:
        a (int): multiplier
        b (int): multiplier
    """
    return a * b


@fc_register("tool")
def add_tool(a: int, b: int):
    """
    Add two integers and returns the result integer

    Args:
        a (int): addend
        b (int): addend
    """
    return a + b


REACT_QUERY = "What is 20+(2*4)? Calculate step by step."
REACT_ANSWER = "Answer: The result of 20+(2*4) is 28."
THOUGHTS = ["Thought: 2*4 comes first; I use multiply_tool.\n", "Thought: now 20+8; I use add_tool.\n"]


def test_react_agent_documented_example():
    engine = Engine(ArithmeticReactPolicy())
    with engine as url:
        agent = ReactAgent(llm_for(url), ["multiply_tool", "add_tool"])
        assert agent(REACT_QUERY) == REACT_ANSWER
    first = engine.requests[0].messages
    assert first[0] == {"role": "system", "content": agent.prompt}
    assert agent.prompt.endswith("Available tools: multiply_tool, add_tool.")
    assert [m["role"] for m in engine.requests[-1].messages] == \
        ["system", "user", "assistant", "tool", "assistant", "tool"]
    assert [m["content"] for m in engine.requests[-1].messages if m["role"] == "tool"] == ["8", "28"]


def test_react_agent_streams_thoughts_and_answer_never_tool_calls(own_session):
    with Engine(ArithmeticReactPolicy()) as url:
        agent = ReactAgent(llm_for(url, stream=True), ["multiply_tool", "add_tool"])
        with lazystream.ThreadPoolExecutor(1) as pool:
            future = pool.submit(agent, REACT_QUERY)
            tokens = [x for _, items in lazystream.follow(future) for x in items]
        sid = own_session
    assert future.result() == REACT_ANSWER
    assert tokens == [t for turn in [*THOUGHTS, REACT_ANSWER] for t in tokenize(turn)]
    calls = [(e.ns, e.data["name"], e.data["arguments"])
             for e in read_session(sid) if e.kind == "tool_call"]
    assert calls == [(("reactagent", "function_call", "llm"), "multiply_tool", {"a": 2, "b": 4}),
                     (("reactagent", "function_call", "llm"), "add_tool", {"a": 20, "b": 8})]
    results = [e.data["content"] for e in read_session(sid) if e.kind == "tool_result"]
    assert results == ["8", "28"]


def test_react_agent_takes_a_history():
    engine = Engine(ArithmeticReactPolicy())
    with engine as url:
        agent = ReactAgent(llm_for(url), ["multiply_tool", "add_tool"])
        assert agent("And 3*5?", llm_chat_history=[[REACT_QUERY, REACT_ANSWER]]) == \
            "Answer: The result of 3*5 is 15."
    assert engine.requests[0].messages[1:3] == [{"role": "user", "content": REACT_QUERY},
                                                {"role": "assistant", "content": REACT_ANSWER}]


def test_react_agent_round_limit_is_a_value_error_as_in_lazyllm():
    with Engine(ArithmeticReactPolicy()) as url:
        agent = ReactAgent(llm_for(url), ["multiply_tool", "add_tool"], max_retries=1)
        with pytest.raises(ValueError, match=r"ReactAgent: the model still asked for tools \(multiply_tool\) "
                                             r"after max_retries=1 rounds") as info:
            agent(REACT_QUERY)
    assert isinstance(info.value, ToolCallLimitError)


def test_react_agent_with_its_own_prompt():
    engine = Engine(ArithmeticReactPolicy())
    with engine as url:
        agent = ReactAgent(llm_for(url), ["multiply_tool", "add_tool"], prompt="Tools: {tool_names}.")
        assert agent(REACT_QUERY) == REACT_ANSWER
    assert engine.requests[0].messages[0] == {"role": "system", "content": "Tools: multiply_tool, add_tool."}


def test_react_policy_is_no_transcript_it_reduces_any_expression():
    engine = Engine(ArithmeticReactPolicy())
    with engine as url:
        agent = ReactAgent(llm_for(url), ["multiply_tool", "add_tool"], max_retries=4)
        assert agent("Compute (1+2)*(3+4) please") == "Answer: The result of (1+2)*(3+4) is 21."
        assert agent("What is 7-2?") == ("Answer: I cannot calculate 7-2: no tool for '-' among "
                                         "multiply_tool, add_tool.")
    calls = [json.loads(m["tool_calls"][0]["function"]["arguments"])
             for m in engine.requests[3].messages if m.get("tool_calls")]
    assert calls == [{"a": 1, "b": 2}, {"a": 3, "b": 4}, {"a": 3, "b": 7}]


def test_agent_stream_switch_is_checked_against_the_llm():
    with Engine(ArithmeticReactPolicy()) as url:
        with pytest.raises(ValueError, match=r"ReactAgent\(stream=True\): the llm .* does not stream; "
                                             r"create it with stream=True"):
            ReactAgent(llm_for(url), ["multiply_tool", "add_tool"], stream=True)
        agent = ReactAgent(llm_for(url, stream=True), ["multiply_tool", "add_tool"], stream=True)
        assert agent(REACT_QUERY) == REACT_ANSWER
