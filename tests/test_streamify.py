"""streamify: field chunks, status messages, the final output — sync and async, on the engine."""
from __future__ import annotations

import asyncio
import concurrent.futures
import os
import pathlib
import queue
import subprocess
import sys
import threading
import uuid

import openai
import pytest

from lazystream.engine import Engine, EngineError, Turn
from lazystream.programs import (LM, ChainOfThought, JSONAdapter, Module, Predict, Prediction,
                                 Tool, settings)
from lazystream.programs import program_policy
from lazystream.streaming import (StatusMessage, StatusMessageProvider, StreamListener,
                                  StreamResponse, streaming_response, streamify)

CHICKEN = "Why did a chicken cross the kitchen?"
CHICKEN_WORDS = ["To", " get", " to", " the", " other", " side", " of", " the", " kitchen", "!"]


def SR(name, field, chunk, last=False):  # noqa: N802 - reads like the class it builds
    return StreamResponse(name, field, chunk, last)


def field_chunks(name, field, words):
    """The chunks of one field: one per word, then the empty last chunk the end marker closes."""
    return [SR(name, field, w) for w in words] + [SR(name, field, "", True)]



def run_sync(stream, lm, **kwargs):
    with settings.context(lm=lm):
        return list(stream(**kwargs))


def run_async(stream, lm, **kwargs):
    async def go():
        with settings.context(lm=lm):
            return [item async for item in stream(**kwargs)]
    return asyncio.run(go())


class TwoSteps(Module):
    def __init__(self, second="answer->simplified_answer"):
        super().__init__()
        self.predict1 = Predict("question->answer")
        self.predict2 = Predict(second)

    def forward(self, question: str, **kwargs):
        answer = self.predict1(question=question)
        return self.predict2(answer=answer)


class ToolThenSum(Module):
    def __init__(self):
        super().__init__()
        self.tool = Tool(lambda x: 2 * x, name="double_the_number")
        self.predict = ChainOfThought("num1, num2->sum")

    def forward(self, num, **kwargs):
        return self.predict(num1=num, num2=self.tool(x=num))


# ---- the seed's examples, exact -------------------------------------------------------------

def test_seed_basic_streams_the_answer(lm):
    stream = streamify(Predict("question->answer"), stream_listeners=[StreamListener("answer")])
    assert run_async(stream, lm, question=CHICKEN) == field_chunks("self", "answer", CHICKEN_WORDS) + [
        Prediction(answer="To get to the other side of the kitchen!")]


def test_sync_streaming_yields_the_same_items_in_the_same_order(lm):
    program = Predict("question->answer")
    listeners = [StreamListener("answer")]
    sync = streamify(program, stream_listeners=listeners, async_streaming=False)
    items = run_sync(sync, lm, question=CHICKEN)
    assert items == run_async(streamify(program, stream_listeners=listeners), lm, question=CHICKEN)
    assert items[-1] == Prediction(answer="To get to the other side of the kitchen!")


def test_seed_multi_field_two_modules(lm):
    stream = streamify(TwoSteps(), stream_listeners=[StreamListener("answer"),
                                                     StreamListener("simplified_answer")])
    assert run_async(stream, lm, question="why did a chicken cross the kitchen?") == (
        field_chunks("predict1", "answer", CHICKEN_WORDS)
        + field_chunks("predict2", "simplified_answer",
                       ["To", " reach", " the", " other", " side", " of", " the", " kitchen", "!"])
        + [Prediction(simplified_answer="To reach the other side of the kitchen!")])


def test_seed_duplicate_field_names_told_apart(lm):
    program = TwoSteps(second="question, answer->answer, score")
    stream = streamify(program, stream_listeners=[
        StreamListener("answer", predict=program.predict1, predict_name="predict1"),
        StreamListener("answer", predict=program.predict2, predict_name="predict2"),
    ])
    with pytest.warns(UserWarning, match=r"input field\(s\) question not given"):
        items = run_async(stream, lm, question="why did a chicken cross the kitchen?")
    assert items == (
        field_chunks("predict1", "answer", CHICKEN_WORDS)
        + field_chunks("predict2", "answer", ["I", "'", "m", " ready", " to", " assist", " you",
                                              "!", " Please", " provide", " a", " question", "."])
        + [Prediction(answer="I'm ready to assist you! Please provide a question.", score="N/A")])


def test_seed_status_messages_and_reasoning(lm):
    stream = streamify(ToolThenSum(), stream_listeners=[StreamListener("reasoning")])
    words = ["To", " find", " the", " sum", " of", " the", " two", " numbers", ",", " we",
             " simply", " add", " them", " together", ".", " Here", ",", " 3", " plus", " 6",
             " equals", " 9", "."]
    assert run_async(stream, lm, num=3) == (
        [StatusMessage("Calling tool double_the_number..."),
         StatusMessage("Tool calling finished! Querying the LLM with tool calling results...")]
        + field_chunks("predict.predict", "reasoning", words)
        + [Prediction(reasoning="To find the sum of the two numbers, we simply add them together. "
                                "Here, 3 plus 6 equals 9.", sum="9")])


# ---- chunking --------------------------------------------------------------------------

class _Tokens:
    """An engine policy replying with exactly the given tokens (set per test)."""

    def __init__(self):
        self.tokens = ["[[ ## answer ## ]]\nok\n\n[[ ## completed ## ]]"]

    def __call__(self, request):
        return Turn(tokens=self.tokens)


@pytest.fixture(scope="module")
def scripted():
    policy = _Tokens()
    with Engine(policy) as url:
        yield policy, LM("openai/m", api_base=url, cache=False)


def test_markers_split_at_every_position_stream_the_same_field(scripted):
    policy, lm = scripted
    reply = "[[ ## answer ## ]]\nHello big world\n\n[[ ## completed ## ]]"
    stream = streamify(Predict("question->answer"), stream_listeners=[StreamListener("answer")],
                       async_streaming=False)
    for cut in range(1, len(reply)):
        policy.tokens = [reply[:cut], reply[cut:]]
        items = run_sync(stream, lm, question="q")
        chunks = [i for i in items if isinstance(i, StreamResponse)]
        assert "".join(c.chunk for c in chunks) == "Hello big world", cut
        assert [c.is_last_chunk for c in chunks].count(True) == 1 and chunks[-1].is_last_chunk, cut
        assert items[-1] == Prediction(answer="Hello big world")


def test_whole_field_in_one_chunk_is_one_last_chunk(scripted):
    policy, lm = scripted
    policy.tokens = ["[[ ## answer ## ]]\nHello world\n\n[[ ## completed ## ]]"]
    stream = streamify(Predict("question->answer"), stream_listeners=[StreamListener("answer")],
                       async_streaming=False)
    assert run_sync(stream, lm, question="q") == [SR("self", "answer", "Hello world", True),
                                                  Prediction(answer="Hello world")]


def test_json_adapter_streams_decoded_text(scripted):
    policy, lm = scripted
    policy.tokens = ['{"answer": "line', "\\", 'n2 \\"q\\" caf\\u00', 'e9', '"}']
    stream = streamify(Predict("question->answer"), stream_listeners=[StreamListener("answer")],
                       async_streaming=False)
    with settings.context(adapter=JSONAdapter()):
        items = run_sync(stream, lm, question="q")
    assert items == [SR("self", "answer", "line"), SR("self", "answer", '\n2 "q" caf'),
                     SR("self", "answer", "é"), SR("self", "answer", "", True),
                     Prediction(answer='line\n2 "q" café')]


def test_json_adapter_on_the_program_policy(lm):
    stream = streamify(ChainOfThought("num1, num2 -> sum"),
                       stream_listeners=[StreamListener("reasoning")])
    with settings.context(adapter=JSONAdapter()):
        items = run_async(stream, lm, num1=3, num2=6)
    text = "To find the sum of the two numbers, we simply add them together. Here, 3 plus 6 equals 9."
    assert "".join(i.chunk for i in items[:-1]) == text
    assert items[-1] == Prediction(reasoning=text, sum="9")


def test_cache_hit_yields_only_the_prediction(engine):
    lm = LM("openai/gpt-4o-mini", api_base=engine.base_url)   # cache on
    question = f"What is 2 + 3? ({uuid.uuid4().hex})"
    stream = streamify(Predict("question->answer"), stream_listeners=[StreamListener("answer")])
    first = run_async(stream, lm, question=question)
    assert "".join(i.chunk for i in first[:-1]) == "2 + 3 is 5."
    assert run_async(stream, lm, question=question) == [Prediction(answer="2 + 3 is 5.")]


def test_allow_reuse_streams_every_call_in_a_loop(lm):
    class Loop(Module):
        def __init__(self):
            super().__init__()
            self.predict = Predict("question->answer")

        def forward(self, questions):
            return [self.predict(question=q) for q in questions][-1]

    questions = ["What is 1 + 1?", "What is 2 + 2?", "What is 3 + 3?"]
    for reuse, expected in ((True, ["1 + 1 is 2.", "2 + 2 is 4.", "3 + 3 is 6."]),
                            (False, ["1 + 1 is 2."])):
        stream = streamify(Loop(), stream_listeners=[StreamListener("answer", allow_reuse=reuse)])
        texts, current = [], ""
        for item in run_async(stream, lm, questions=questions)[:-1]:
            current += item.chunk
            if item.is_last_chunk:
                texts.append(current)
                current = ""
        assert texts == expected


def test_include_final_prediction_false_drops_it_when_fields_streamed(lm):
    stream = streamify(Predict("question->answer"), stream_listeners=[StreamListener("answer")],
                       include_final_prediction_in_output_stream=False)
    items = run_async(stream, lm, question=CHICKEN)
    assert items == field_chunks("self", "answer", CHICKEN_WORDS)


# ---- per-call state ------------------------------------------------------------------------

def test_second_call_streams_in_full(lm):
    stream = streamify(Predict("question->answer"), stream_listeners=[StreamListener("answer")])
    first = run_async(stream, lm, question=CHICKEN)
    assert run_async(stream, lm, question=CHICKEN) == first
    assert len(first) == len(CHICKEN_WORDS) + 2


def test_eight_concurrent_calls_each_stream_their_own_answer(lm):
    stream = streamify(Predict("question->answer"), stream_listeners=[StreamListener("answer")])

    async def one(i):
        items = [item async for item in stream(question=f"What is {i} + 100?")]
        return items

    async def all_of_them():
        with settings.context(lm=lm):
            return await asyncio.gather(*(one(i) for i in range(8)))

    for i, items in enumerate(asyncio.run(all_of_them())):
        answer = f"{i} + 100 is {i + 100}."
        assert "".join(c.chunk for c in items[:-1]) == answer
        assert [c.is_last_chunk for c in items[:-1]].count(True) == 1
        assert items[-1] == Prediction(answer=answer)


def test_concurrent_sync_calls_in_threads(lm):
    stream = streamify(Predict("question->answer"), stream_listeners=[StreamListener("answer")],
                       async_streaming=False)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: run_sync(stream, lm, question=f"What is {i} * 3?"), range(8)))
    for i, items in enumerate(results):
        assert items[-1] == Prediction(answer=f"{i} * 3 is {i * 3}.")
        assert "".join(c.chunk for c in items[:-1]) == f"{i} * 3 is {i * 3}."


# ---- cancellation ----------------------------------------------------------------------------

class Recorder(Module):
    """Records how its predictor call ended, so a test can see the producer stop."""

    def __init__(self):
        super().__init__()
        self.predict = Predict("question->answer")
        self.outcomes: queue.Queue = queue.Queue()

    def forward(self, question):
        try:
            result = self.predict(question=question)
        except BaseException as e:
            self.outcomes.put(e)
            raise
        self.outcomes.put(result)
        return result


@pytest.fixture(scope="module")
def slow_lm():
    # 1,000 words at 100 tokens/s: ten seconds, unless the run is cancelled.
    with Engine(program_policy, tokens_per_second=100) as url:
        yield LM("openai/m", api_base=url, cache=False)


LONG = "Tell me a story in 1000 words."


def test_leaving_the_sync_generator_cancels_the_run(slow_lm):
    program = Recorder()
    stream = streamify(program, stream_listeners=[StreamListener("answer")], async_streaming=False)
    with settings.context(lm=slow_lm):
        gen = stream(question=LONG)
        assert [next(gen).chunk for _ in range(3)] == ["The", " quick", " brown"]
        gen.close()
        assert isinstance(program.outcomes.get(timeout=8), concurrent.futures.CancelledError)
        again = stream(question=LONG)   # callable again at once
        assert next(again).chunk == "The"
        del again                       # garbage collection cancels too
        assert isinstance(program.outcomes.get(timeout=8), concurrent.futures.CancelledError)


def test_aclose_cancels_the_async_run(slow_lm):
    program = Recorder()
    stream = streamify(program, stream_listeners=[StreamListener("answer")])

    async def go():
        with settings.context(lm=slow_lm):
            agen = stream(question=LONG)
            first = [(await agen.__anext__()).chunk for _ in range(2)]
            await agen.aclose()
            return first

    assert asyncio.run(go()) == ["The", " quick"]
    assert isinstance(program.outcomes.get(timeout=8), concurrent.futures.CancelledError)


# ---- errors ----------------------------------------------------------------------------------

class Boom(Module):
    def __init__(self):
        super().__init__()
        self.predict = Predict("question->answer")

    def forward(self, question):
        self.predict(question=question)
        raise ValueError("boom after the answer")


@pytest.mark.parametrize("async_streaming", [False, True])
def test_program_error_reaches_the_caller_unwrapped(lm, async_streaming):
    stream = streamify(Boom(), stream_listeners=[StreamListener("answer")],
                       async_streaming=async_streaming)
    items = []

    async def consume_async():
        with settings.context(lm=lm):
            async for item in stream(question=CHICKEN):
                items.append(item)

    with pytest.raises(ValueError, match="boom after the answer") as info:
        if async_streaming:
            asyncio.run(consume_async())
        else:
            with settings.context(lm=lm):
                for item in stream(question=CHICKEN):
                    items.append(item)
    assert type(info.value) is ValueError
    assert items == field_chunks("predict", "answer", CHICKEN_WORDS)


@pytest.mark.parametrize("async_streaming", [False, True])
def test_model_error_reaches_the_caller(async_streaming):
    def refuse(request):
        raise EngineError(400, "this engine refuses")

    with Engine(refuse) as url:
        lm = LM("openai/m", api_base=url, cache=False)
        stream = streamify(Predict("question->answer"), stream_listeners=[StreamListener("answer")],
                           async_streaming=async_streaming)
        with pytest.raises(openai.BadRequestError, match="this engine refuses"):
            (run_async if async_streaming else run_sync)(stream, lm, question="q")


# ---- status messages -------------------------------------------------------------------------

def test_status_message_arrives_while_the_tool_runs():
    release = threading.Event()

    class SlowTool(Module):
        def __init__(self):
            super().__init__()
            self.tool = Tool(lambda x: release.wait(10), name="slow")

        def forward(self):
            return Prediction(released=self.tool(x=1))

    items = []
    for item in streamify(SlowTool(), async_streaming=False)():
        items.append(item)
        if item == StatusMessage("Calling tool slow..."):
            release.set()   # the tool returns True only if we saw this before it finished
    assert items == [StatusMessage("Calling tool slow..."),
                     StatusMessage("Tool calling finished! Querying the LLM with tool calling results..."),
                     Prediction(released=True)]


def test_custom_provider_hooks_and_two_argument_end_hook(lm):
    class Provider(StatusMessageProvider):
        def tool_start_status_message(self, instance, inputs):
            return f"Calling Tool {instance.name} with inputs {inputs}..."

        def tool_end_status_message(self, instance, outputs):
            return f"Tool finished with output: {outputs}!"

        def lm_start_status_message(self, instance, inputs):
            return f"LM {instance.model_name} asked with {len(inputs['messages'])} messages"

        def lm_end_status_message(self, outputs):
            return None

        def module_start_status_message(self, instance, inputs):
            return f"start {type(instance).__name__}" if isinstance(instance, ChainOfThought) else None

    items = run_sync(streamify(ToolThenSum(), status_message_provider=Provider(),
                               async_streaming=False), lm, num=3)
    assert [i.message for i in items if isinstance(i, StatusMessage)] == [
        "Calling Tool double_the_number with inputs {'x': 3}...", "Tool finished with output: 6!",
        "start ChainOfThought", "LM gpt-4o-mini asked with 2 messages"]


def test_a_hook_returning_a_non_string_is_an_error():
    class Bad(StatusMessageProvider):
        def tool_start_status_message(self, instance, inputs):
            return 42

    class P(Module):
        def __init__(self):
            super().__init__()
            self.tool = Tool(lambda: 1, name="one")

        def forward(self):
            return self.tool()

    with pytest.raises(TypeError, match="Bad.tool_start_status_message returned 42"):
        list(streamify(P(), status_message_provider=Bad(), async_streaming=False)())


# ---- listener resolution -----------------------------------------------------------------------

def test_unknown_field_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"'answr' is not an output field of any predictor .*"
                                         r"output fields: predict1.answer, predict2.simplified_answer"):
        streamify(TwoSteps(), stream_listeners=[StreamListener("answr")])


def test_field_of_several_predictors_asks_for_predict_and_name():
    with pytest.raises(ValueError, match=r"several predictors \(predict1, predict2\); pass "
                                         r"predict= and predict_name="):
        streamify(TwoSteps(second="question, answer->answer, score"),
                  stream_listeners=[StreamListener("answer")])


def test_field_missing_from_the_given_predictor():
    program = TwoSteps()
    with pytest.raises(ValueError, match="'answer' is not an output field of 'predict2'; fields: "
                                         "simplified_answer"):
        streamify(program, stream_listeners=[StreamListener("answer", predict=program.predict2)])


# ---- SSE -------------------------------------------------------------------------------------

def test_streaming_response_encodes_every_item_and_ends_with_done(lm):
    stream = streamify(ToolThenSum(), stream_listeners=[StreamListener("reasoning")])

    async def go():
        with settings.context(lm=lm):
            return [line async for line in streaming_response(stream(num=3))]

    lines = asyncio.run(go())
    assert lines[0] == 'data: {"type":"status","message":"Calling tool double_the_number..."}\n\n'
    assert lines[2] == ('data: {"type":"chunk","predict_name":"predict.predict",'
                        '"signature_field_name":"reasoning","chunk":"To","is_last_chunk":false}\n\n')
    assert lines[-2] == ('data: {"prediction":{"reasoning":"To find the sum of the two numbers, we '
                         'simply add them together. Here, 3 plus 6 equals 9.","sum":"9"}}\n\n')
    assert lines[-1] == "data: [DONE]\n\n"


def test_streaming_response_reports_an_error_event(lm):
    stream = streamify(Boom(), stream_listeners=[StreamListener("answer")], async_streaming=False)

    async def go():
        with settings.context(lm=lm):
            return [line async for line in streaming_response(stream(question=CHICKEN))]

    lines = asyncio.run(go())
    assert lines[-2:] == ['event: error\ndata: {"type":"error","error":{"type":"ValueError",'
                          '"message":"boom after the answer"}}\n\n', "data: [DONE]\n\n"]


def test_the_program_runs_with_the_settings_of_the_call_not_of_the_first_read(lm):
    stream = streamify(Predict("question->answer"), stream_listeners=[StreamListener("answer")],
                       async_streaming=False)
    with settings.context(lm=lm):
        gen = stream(question="What is 1 + 2?")
    with settings.context(lm=None):
        assert list(gen)[-1] == Prediction(answer="1 + 2 is 3.")


# ---- the seed's examples, run as scripts ---------------------------------------------------

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"
SUM_REASONING = ["To", " find", " the", " sum", " of", " the", " two", " numbers", ",", " we",
                 " simply", " add", " them", " together", ".", " Here", ",", " 3", " plus", " 6",
                 " equals", " 9", "."]


def _lines(items):
    return "".join(f"{item!r}\n" for item in items)


def _expected_output(name):
    chicken = Prediction(answer="To get to the other side of the kitchen!")
    basic = field_chunks("self", "answer", CHICKEN_WORDS)
    if name == "basic":
        return _lines(basic + [chicken])
    if name == "chunk_types":
        return "".join(f"Output token of field answer: {c.chunk}\n" for c in basic) + \
            "Final output:  None\n"
    if name == "multi_field":
        return _lines(field_chunks("predict1", "answer", CHICKEN_WORDS) + field_chunks(
            "predict2", "simplified_answer",
            ["To", " reach", " the", " other", " side", " of", " the", " kitchen", "!"])) + \
            f"Final output:  {Prediction(simplified_answer='To reach the other side of the kitchen!')!r}\n"
    if name == "duplicate_names":
        return _lines(field_chunks("predict1", "answer", CHICKEN_WORDS) + field_chunks(
            "predict2", "answer", ["I", "'", "m", " ready", " to", " assist", " you", "!",
                                   " Please", " provide", " a", " question", "."])) + \
            "Final output:  " + repr(Prediction(
                answer="I'm ready to assist you! Please provide a question.", score="N/A")) + "\n"
    if name == "status":
        return _lines([StatusMessage("Calling tool double_the_number..."),
                       StatusMessage("Tool calling finished! Querying the LLM with tool calling "
                                     "results...")]
                      + field_chunks("predict.predict", "reasoning", SUM_REASONING)) + \
            "Final output:  " + repr(Prediction(reasoning="".join(SUM_REASONING), sum="9")) + "\n"
    assert name == "sync"
    return _lines(basic) + f"Program output: {chicken!r}\n"


@pytest.mark.parametrize("name", ["basic", "chunk_types", "multi_field", "duplicate_names",
                                  "status", "sync"])
def test_seed_example_script_prints_the_seed_shape(name, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env["LAZYSTREAM_HOME"] = str(tmp_path)
    done = subprocess.run([sys.executable, f"dspy_{name}.py"], cwd=EXAMPLES, env=env,
                          capture_output=True, text=True, timeout=50)
    assert done.returncode == 0, done.stderr
    assert done.stdout == _expected_output(name)
