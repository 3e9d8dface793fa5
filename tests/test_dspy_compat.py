"""DSPy 3 code runs unchanged: settings, errors, LM keywords, signatures, callbacks, async.

Each test is a behaviour DSPy documents, with the output DSPy documents for it.
"""
from __future__ import annotations

import asyncio
import logging

import pytest
from pydantic import BaseModel

import lazystream as dspy
from lazystream.programs import cache

pytestmark = pytest.mark.timeout(30)


# ---- dspy.context ----------------------------------------------------------------------

def test_context_is_the_top_level_alias_of_settings_context(lm):
    assert dspy.context == dspy.settings.context
    with dspy.context(lm=lm):
        assert dspy.settings.lm is lm
        assert dspy.Predict("question -> answer")(question="What is 3 + 4?").answer == "3 + 4 is 7."
    assert dspy.settings.lm is None


def test_context_keeps_other_settings_dspy_programs_store():
    with dspy.context(track_usage=True, my_flag="x"):
        assert dspy.settings.track_usage is True
        assert dspy.settings["my_flag"] == "x"
    assert dspy.settings.get("my_flag") is None


# ---- errors when the LM is missing or misconfigured -------------------------------------

def test_no_lm_is_a_value_error_with_dspys_message():
    with pytest.raises(ValueError) as info:
        dspy.Predict("question -> answer")(question="q")
    assert str(info.value) == (
        "No LM is loaded. Please configure the LM using `dspy.configure(lm=dspy.LM(...))`. "
        "e.g, `dspy.configure(lm=dspy.LM('openai/gpt-4o-mini'))`")


def test_configure_with_a_model_string_says_how_to_fix_it():
    with pytest.raises(ValueError) as info:
        dspy.configure(lm="openai/gpt-4o-mini")
    assert str(info.value) == (
        "LM must be an instance of `dspy.BaseLM`, not a string. Instead of using a string like "
        "'dspy.configure(lm=\"openai/gpt-4o-mini\")', please configure the LM like "
        "'dspy.configure(lm=dspy.LM(\"openai/gpt-4o-mini\"))'")
    assert dspy.settings.lm is None  # nothing was half-configured
    with pytest.raises(ValueError, match="not a string"):
        with dspy.context(lm="openai/gpt-4o-mini"):
            pass


def test_a_model_string_given_per_call_is_the_same_value_error():
    with pytest.raises(ValueError, match=r"please configure the LM like 'dspy.configure\(lm=dspy"
                                         r".LM\(\"openai/gpt-4o-mini\"\)\)'"):
        dspy.Predict("question -> answer")(question="q", lm="openai/gpt-4o-mini")


# ---- LM keywords that belong to DSPy, not to the API -----------------------------------

def test_dspy_only_lm_keywords_are_kept_and_never_sent(engine):
    lm = dspy.LM("openai/gpt-4o-mini", model_type="chat", api_base=engine.base_url, cache=False,
                 num_retries=1, rollout_id=7, finetuning_model="ft-base",
                 launch_kwargs={"gpus": 1}, train_kwargs={"epochs": 2}, provider=None,
                 use_developer_role=False, callbacks=[], temperature=0.5)
    assert lm("Say hi") == ["Say hi"]
    sent = engine.requests[-1].params
    assert set(sent) == {"model", "messages", "temperature"}
    assert sent["temperature"] == 0.5
    assert (lm.model_type, lm.num_retries, lm.finetuning_model, lm.launch_kwargs,
            lm.train_kwargs) == ("chat", 1, "ft-base", {"gpus": 1}, {"epochs": 2})


def test_rollout_id_makes_a_distinct_cache_entry_and_is_never_sent(engine):
    cache.clear()
    lm = dspy.LM("openai/gpt-4o-mini", api_base=engine.base_url, temperature=1.0)
    first = len(engine.requests)
    lm("rollout please", rollout_id=1)
    lm("rollout please", rollout_id=1)        # cached
    lm("rollout please", rollout_id=2)        # another rollout: a new request
    assert len(engine.requests) == first + 2
    assert all("rollout_id" not in r.params for r in engine.requests[first:])


def test_model_types_other_than_chat_are_refused_by_name():
    with pytest.raises(ValueError, match=r"model_type='text' is not supported"):
        dspy.LM("openai/gpt-3.5-turbo-instruct", model_type="text")
    with pytest.raises(ValueError, match=r"second positional argument is model_type .* "
                                         r"api_base='http://localhost:8000/v1'"):
        dspy.LM("openai/m", "http://localhost:8000/v1")


# ---- signatures ----------------------------------------------------------------------------

def test_class_signature_with_an_undeclared_field_is_a_type_error():
    with pytest.raises(TypeError) as info:
        class MySignature(dspy.Signature):
            input1: str
    assert str(info.value).startswith(
        "Field `input1` in `MySignature` must be declared with InputField or OutputField")
    assert "`input1: str = dspy.InputField()`" in str(info.value)


def test_input_field_default_is_used_when_the_input_is_not_given(lm, engine):
    class QA(dspy.Signature):
        question: str = dspy.InputField(default="What is 3 + 4?")
        answer: str = dspy.OutputField()

    assert dspy.Predict(QA)(lm=lm).answer == "3 + 4 is 7."
    assert dspy.Predict(QA)(question="What is 2 + 2?", lm=lm).answer == "2 + 2 is 4."
    assert "[[ ## question ## ]]\nWhat is 2 + 2?" in engine.requests[-1].last_user


# ---- callbacks -----------------------------------------------------------------------------

class _Recorder(dspy.BaseCallback):
    def __init__(self):
        self.events = []

    def on_module_start(self, call_id, instance, inputs):
        self.events.append(("module_start", call_id, type(instance).__name__, inputs))

    def on_module_end(self, call_id, outputs, exception):
        self.events.append(("module_end", call_id, outputs, exception))

    def on_lm_start(self, call_id, instance, inputs):
        self.events.append(("lm_start", call_id, inputs["prompt"], inputs["messages"] is None))

    def on_lm_end(self, call_id, outputs, exception):
        self.events.append(("lm_end", call_id, outputs, exception))

    def on_adapter_parse_end(self, call_id, outputs, exception):
        self.events.append(("parse_end", call_id, outputs, exception))


def test_settings_callbacks_default_to_an_empty_list():
    assert dspy.settings.callbacks == []


def test_configured_callbacks_see_module_lm_and_adapter_calls(lm):
    recorder = _Recorder()
    with dspy.context(lm=lm, callbacks=[recorder]):
        assert dspy.settings.callbacks == [recorder]
        pred = dspy.Predict("question -> answer")(question="What is 3 + 4?")
    kinds = [e[0] for e in recorder.events]
    assert kinds == ["module_start", "lm_start", "lm_end", "parse_end", "module_end"]
    module_start, lm_start, lm_end, parse_end, module_end = recorder.events
    assert module_start[2:] == ("Predict", {"args": (), "kwargs": {"question": "What is 3 + 4?"}})
    assert module_start[1] == module_end[1] and lm_start[1] == lm_end[1]
    assert module_start[1] != lm_start[1]
    assert lm_end[2][0].startswith("[[ ## answer ## ]]\n3 + 4 is 7.")
    assert parse_end[2] == {"answer": "3 + 4 is 7."}
    assert module_end[2:] == (pred, None)


def test_instance_callbacks_and_failures_reach_the_end_handler():
    recorder = _Recorder()
    predict = dspy.Predict("question -> answer", callbacks=[recorder])
    with pytest.raises(ValueError, match="No LM is loaded"):
        predict(question="q")
    (start, end) = recorder.events
    assert start[0] == "module_start" and end[0] == "module_end"
    assert end[2] is None and isinstance(end[3], ValueError)


def test_a_failing_handler_is_logged_and_the_call_goes_on(lm, caplog):
    class Broken(dspy.BaseCallback):
        def on_module_start(self, call_id, instance, inputs):
            raise RuntimeError("handler bug")

    with caplog.at_level(logging.WARNING), dspy.context(callbacks=[Broken()]):
        assert dspy.Predict("question -> answer")(question="What is 3 + 4?", lm=lm).answer \
            == "3 + 4 is 7."
    assert "handler bug" in caplog.text


# ---- async programs ------------------------------------------------------------------------

def test_predict_acall_returns_the_prediction(lm):
    async def main():
        with dspy.context(lm=lm):
            return await dspy.Predict("question -> answer").acall(question="What is 3 + 4?")

    assert asyncio.run(main()) == dspy.Prediction(answer="3 + 4 is 7.")


def test_module_aforward_is_what_acall_runs(lm):
    class Sum(dspy.Module):
        def __init__(self):
            super().__init__()
            self.cot = dspy.ChainOfThought("num1, num2 -> sum")

        async def aforward(self, num1, num2):
            return await self.cot.acall(num1=num1, num2=num2)

    async def main():
        with dspy.context(lm=lm):
            return await Sum().acall(num1=3, num2=6)

    pred = asyncio.run(main())
    assert pred.sum == "9"
    assert pred.reasoning == ("To find the sum of the two numbers, we simply add them together. "
                              "Here, 3 plus 6 equals 9.")


def test_acall_of_a_module_without_aforward_runs_forward_in_a_thread(lm):
    class QA(dspy.Module):
        def __init__(self):
            super().__init__()
            self.predict = dspy.Predict("question -> answer")

        def forward(self, question):
            return self.predict(question=question)

    async def main():
        with dspy.context(lm=lm):
            return await asyncio.gather(QA().acall(question="What is 1 + 1?"),
                                        QA().acall(question="What is 2 + 5?"))

    assert [p.answer for p in asyncio.run(main())] == ["1 + 1 is 2.", "2 + 5 is 7."]


def test_lm_acall_and_async_callbacks(lm):
    recorder = _Recorder()

    async def main():
        with dspy.context(callbacks=[recorder]):
            return await lm.acall("Say hi")

    assert asyncio.run(main()) == ["Say hi"]
    assert [e[0] for e in recorder.events] == ["lm_start", "lm_end"]
    assert recorder.events[0][2:] == ("Say hi", True)
    assert recorder.events[1][2:] == (["Say hi"], None)


def test_predict_acall_takes_keywords_only(lm):
    with pytest.raises(ValueError, match="Positional arguments are not allowed"):
        asyncio.run(dspy.Predict("question -> answer").acall("q", lm=lm))


# ---- Tool ----------------------------------------------------------------------------------

def test_tool_args_carry_types_and_defaults_as_in_dspys_docstring():
    def foo(x: int, y: str = "hello"):
        return str(x) + y

    tool = dspy.Tool(foo)
    assert tool.args == {"x": {"type": "integer"}, "y": {"type": "string", "default": "hello"}}
    assert tool.arg_types == {"x": int, "y": str}
    assert tool(x=1) == "1hello"


def test_tool_of_a_callable_object_takes_its_call_docstring():
    class WebSearch:
        def __call__(self, query: str, k: int = 3) -> list[str]:
            """Search the web for the query."""
            return [query] * k

    tool = dspy.Tool(WebSearch())
    assert (tool.name, tool.desc) == ("WebSearch", "Search the web for the query.")
    assert tool.args == {"query": {"type": "string"}, "k": {"type": "integer", "default": 3}}
    assert tool(query="q", k=2) == ["q", "q"]


def test_tool_validates_its_arguments_with_the_schema():
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    tool = dspy.Tool(add)
    with pytest.raises(ValueError) as info:
        tool(a="one", b=2)
    assert str(info.value) == "Arg a is invalid: 'one' is not of type 'integer'"
    with pytest.raises(ValueError, match=r"^Arg c is not in the tool's args\. Tool 'add' takes: a, b$"):
        tool(a=1, b=2, c=3)
    assert tool(a=1, b=2.0) == 3   # 2.0 is an integer in JSON Schema; converted to 2


class Point(BaseModel):
    x: int
    y: int


def test_tool_converts_dicts_to_pydantic_models_and_keeps_extra_kwargs():
    def norm1(p: Point, **options) -> int:
        return abs(p.x) + abs(p.y) + len(options)

    tool = dspy.Tool(norm1)
    assert tool.args["p"] == {"properties": {"x": {"title": "X", "type": "integer"},
                                             "y": {"title": "Y", "type": "integer"}},
                              "required": ["x", "y"], "title": "Point", "type": "object"}
    assert tool(p={"x": -2, "y": 3}, verbose=True) == 6
    with pytest.raises(ValueError, match=r"^Arg p is invalid: 'y' is a required property$"):
        tool(p={"x": 1})


def test_str_of_a_tool_is_dspys_prompt_line():
    def get_weather(city: str) -> str:
        """Get the weather
        of a city."""
        return "sunny"

    tool = dspy.Tool(get_weather)
    assert str(tool) == ("get_weather, whose description is <desc>Get the weather  "
                         "        of a city.</desc>. It takes arguments {'city': {'type': "
                         "'string'}}.")
    assert str(dspy.Tool(lambda: 1, name="one")) == "one. It takes arguments {}."
    assert repr(dspy.Tool(get_weather, desc="Weather.")) == (
        "Tool(name=get_weather, desc=Weather., args={'city': {'type': 'string'}})")


def test_async_tools_use_acall():
    async def fetch(url: str) -> str:
        """Fetch a page."""
        return f"<html>{url}</html>"

    tool = dspy.Tool(fetch)
    assert asyncio.run(tool.acall(url="a")) == "<html>a</html>"
    with pytest.raises(ValueError, match="You are calling `__call__` on an async tool, please use "
                                         "`acall` instead"):
        tool(url="a")
    with dspy.context(allow_tool_async_sync_conversion=True):
        assert tool(url="b") == "<html>b</html>"


def test_tool_callbacks_see_the_keyword_inputs():
    seen = []

    class OnTool(dspy.BaseCallback):
        def on_tool_start(self, call_id, instance, inputs):
            seen.append((instance.name, inputs))

        def on_tool_end(self, call_id, outputs, exception):
            seen.append(outputs)

    with dspy.context(callbacks=[OnTool()]):
        dspy.Tool(lambda x: 2 * x, name="double")(x=4)
    assert seen == [("double", {"kwargs": {"x": 4}}), 8]


# ---- streaming_response ----------------------------------------------------------------------

def test_streaming_response_payloads_are_dspys():
    async def items():
        yield 'data: {"finish_reason": "stop", "index": 0}\n\n'
        yield dspy.Prediction(answer="To get to the other side — of the kitchen!", n=2,
                              dspy_uuid="internal")
        yield dspy.Prediction(point=Point(x=1, y=2))

    async def collect():
        return [line async for line in dspy.streaming.streaming_response(items())]

    assert asyncio.run(collect()) == [
        'data: {"finish_reason": "stop", "index": 0}\n\n',
        'data: {"prediction":{"answer":"To get to the other side — of the kitchen!","n":2}}\n\n',
        'data: {"prediction":{"point":{"x":1,"y":2}}}\n\n',
        "data: [DONE]\n\n"]


# ---- listeners on fields that are not str ----------------------------------------------------

def test_a_listener_on_an_int_field_streams_its_text(lm):
    stream = dspy.streamify(dspy.ChainOfThought("num1, num2 -> sum: int"),
                            stream_listeners=[dspy.streaming.StreamListener("sum")],
                            async_streaming=False)
    with dspy.context(lm=lm):
        items = list(stream(num1=3, num2=6))
    chunks = [i for i in items if isinstance(i, dspy.streaming.StreamResponse)]
    assert "".join(c.chunk for c in chunks) == "9"
    assert [c.is_last_chunk for c in chunks][-1] is True
    assert {c.predict_name for c in chunks} == {"predict"}
    assert items[-1].sum == 9


def test_asyncify_runs_a_program_in_a_thread_with_the_callers_settings(lm):
    program = dspy.asyncify(dspy.Predict("question -> answer"))

    async def main():
        with dspy.context(lm=lm):
            return await program(question="What is 3 + 4?")

    assert asyncio.run(main()).answer == "3 + 4 is 7."
    with pytest.raises(TypeError, match="asyncify: program must be callable, got 42"):
        dspy.asyncify(42)


# ---- DSPy's async tutorial, its three examples ------------------------------------------------

def test_async_tutorial_predict_acall(lm, capsys):
    dspy.configure(lm=lm)
    try:
        predict = dspy.Predict("question->answer")

        async def main():
            output = await predict.acall(question="why did a chicken cross the kitchen?")
            print(output)

        asyncio.run(main())
    finally:
        dspy.configure(lm=None)
    assert capsys.readouterr().out == (
        "Prediction(\n    answer='To get to the other side of the kitchen!'\n)\n")


def test_async_tutorial_async_tool(capsys):
    async def foo(x):
        await asyncio.sleep(0)
        print(f"I get: {x}")

    tool = dspy.Tool(foo)

    async def main():
        await tool.acall(x=2)

    asyncio.run(main())
    assert capsys.readouterr().out == "I get: 2\n"
    assert tool.args == {"x": {}}


def test_async_tutorial_custom_module_without_super_init(lm):
    class MyModule(dspy.Module):
        def __init__(self):   # DSPy's example does not call super().__init__()
            self.predict1 = dspy.ChainOfThought("question->answer")
            self.predict2 = dspy.ChainOfThought("answer->simplified_answer")

        async def aforward(self, question, **kwargs):
            answer = await self.predict1.acall(question=question)
            return await self.predict2.acall(answer=answer)

    async def main():
        with dspy.context(lm=lm):
            return await MyModule().acall(question="Why did a chicken cross the kitchen?")

    result = asyncio.run(main())
    assert result.simplified_answer == "To reach the other side of the kitchen!"
    assert [n for n, _ in MyModule().named_predictors()] == ["predict1.predict", "predict2.predict"]


def test_the_async_client_of_a_loop_is_closed_when_the_loop_ends(lm):
    seen = []

    async def main():
        assert await lm.acall("one") == ["one"]
        assert await lm.acall("two") == ["two"]        # the same client, the same pool
        seen.append(await lm._async_client())
        assert not seen[0].is_closed()

    asyncio.run(main())
    assert seen[0].is_closed()
