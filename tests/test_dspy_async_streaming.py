"""DSPy 3's async programs in streamify, and ``apply_sync_streaming``, on the engine."""
from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import threading

import pytest

import lazystream as dspy
from lazystream.engine import Engine
from lazystream.programs import program_policy
from lazystream.streaming import StreamListener, StreamResponse, apply_sync_streaming

pytestmark = pytest.mark.timeout(30)

CHICKEN = "Why did a chicken cross the kitchen?"
CHICKEN_WORDS = ["To", " get", " to", " the", " other", " side", " of", " the", " kitchen", "!"]
CHICKEN_CHUNKS = [StreamResponse("self", "answer", w) for w in CHICKEN_WORDS] + \
    [StreamResponse("self", "answer", "", True)]


class AsyncQA(dspy.Module):
    """A program written for DSPy's async API: only ``aforward``."""

    def __init__(self):
        super().__init__()
        self.predict = dspy.Predict("question->answer")
        self.outcomes: queue.Queue = queue.Queue()

    async def aforward(self, question):
        try:
            result = await self.predict.acall(question=question)
        except BaseException as e:
            self.outcomes.put(e)
            raise
        self.outcomes.put(result)
        return result


def test_streamify_runs_an_async_program_with_acall(lm):
    program = AsyncQA()
    stream = dspy.streamify(program, stream_listeners=[StreamListener("answer", predict=program.predict,
                                                                      predict_name="self")],
                            is_async_program=True)

    async def main():
        with dspy.context(lm=lm):
            return [item async for item in stream(question=CHICKEN)]

    items = asyncio.run(main())
    assert items == CHICKEN_CHUNKS + [dspy.Prediction(answer="To get to the other side of the kitchen!")]


def test_async_program_streams_the_same_items_in_sync_mode(lm):
    program = AsyncQA()
    stream = dspy.streamify(program, stream_listeners=[StreamListener("answer")],
                            is_async_program=True, async_streaming=False)
    with dspy.context(lm=lm):
        items = list(stream(question=CHICKEN))
    assert items[:-1] == [StreamResponse("predict", "answer", c.chunk, c.is_last_chunk)
                          for c in CHICKEN_CHUNKS]


def test_an_async_function_is_awaited_as_it_is(lm):
    predict = dspy.Predict("question->answer")

    async def program(question):
        return await predict.acall(question=question)

    stream = dspy.streamify(program, async_streaming=False)
    with dspy.context(lm=lm):
        assert list(stream(question="What is 3 + 4?")) == [dspy.Prediction(answer="3 + 4 is 7.")]


def test_is_async_program_needs_an_acall():
    with pytest.raises(TypeError, match=r"is_async_program=True needs a program with an async "
                                         r"acall\(\)"):
        dspy.streamify(lambda question: question, is_async_program=True)


def test_two_async_programs_stream_concurrently_without_mixing(lm):
    program = AsyncQA()
    stream = dspy.streamify(program, stream_listeners=[StreamListener("answer")],
                            is_async_program=True)

    async def one(question):
        return [item async for item in stream(question=question)]

    async def main():
        with dspy.context(lm=lm):
            return await asyncio.gather(one(CHICKEN), one("What is 3 + 4?"))

    chicken, sum_ = asyncio.run(main())
    assert "".join(i.chunk for i in chicken[:-1]) == "To get to the other side of the kitchen!"
    assert "".join(i.chunk for i in sum_[:-1]) == "3 + 4 is 7."


@pytest.fixture(scope="module")
def slow_lm():
    with Engine(program_policy, tokens_per_second=100) as url:
        yield dspy.LM("openai/m", api_base=url, cache=False)


def test_leaving_an_async_program_early_cancels_its_model_call(slow_lm):
    program = AsyncQA()
    stream = dspy.streamify(program, stream_listeners=[StreamListener("answer")],
                            is_async_program=True, async_streaming=False)
    with dspy.context(lm=slow_lm):
        gen = stream(question="Tell me a story in 1000 words.")
        assert [next(gen).chunk for _ in range(2)] == ["The", " quick"]
        gen.close()
    assert isinstance(program.outcomes.get(timeout=8), concurrent.futures.CancelledError)


# ---- apply_sync_streaming ----------------------------------------------------------------------

def test_apply_sync_streaming_yields_the_async_stream_in_order(lm):
    stream = dspy.streamify(dspy.Predict("question->answer"),
                            stream_listeners=[StreamListener("answer")])
    with dspy.context(lm=lm):
        items = list(apply_sync_streaming(stream(question=CHICKEN)))
    assert items == CHICKEN_CHUNKS + [dspy.Prediction(answer="To get to the other side of the kitchen!")]


def test_apply_sync_streaming_raises_the_streams_error():
    async def failing():
        yield 1
        raise KeyError("lost in DSPy")

    gen = apply_sync_streaming(failing())
    assert next(gen) == 1
    with pytest.raises(KeyError, match="lost in DSPy"):
        next(gen)


def test_closing_the_sync_generator_runs_the_async_cleanup():
    cleaned = threading.Event()

    async def endless():
        try:
            n = 0
            while True:
                n += 1
                yield n
                await asyncio.sleep(0)
        finally:
            cleaned.set()

    gen = apply_sync_streaming(endless())
    assert [next(gen), next(gen)] == [1, 2]
    gen.close()
    assert cleaned.wait(5)


def test_apply_sync_streaming_refuses_a_sync_iterable():
    with pytest.raises(TypeError, match=r"expected an async generator .*, got \[1, 2\]"):
        next(apply_sync_streaming([1, 2]))


# ---- status messages from plain threads, through settings.callbacks ---------------------------

class ToolInPlainThread(dspy.Module):
    """Calls its tool in a ``threading.Thread``, carrying ``settings.callbacks`` as DSPy users do."""

    def __init__(self, carry: bool):
        super().__init__()
        self.carry = carry
        self.tool = dspy.Tool(lambda x: 2 * x, name="double_the_number")

    def forward(self, x):
        captured = dspy.settings.callbacks
        result = {}

        def work():
            if self.carry:
                with dspy.context(callbacks=captured):
                    result["value"] = self.tool(x=x)
            else:
                result["value"] = self.tool(x=x)

        thread = threading.Thread(target=work)
        thread.start()
        thread.join(10)
        return dspy.Prediction(doubled=result["value"])


def test_status_hooks_reach_a_plain_thread_that_carries_settings_callbacks():
    stream = dspy.streamify(ToolInPlainThread(carry=True), async_streaming=False)
    assert list(stream(x=3)) == [
        dspy.streaming.StatusMessage("Calling tool double_the_number..."),
        dspy.streaming.StatusMessage("Tool calling finished! Querying the LLM with tool calling "
                                     "results..."),
        dspy.Prediction(doubled=6)]


def test_a_plain_thread_without_the_callbacks_reports_nothing():
    stream = dspy.streamify(ToolInPlainThread(carry=False), async_streaming=False)
    assert list(stream(x=3)) == [dspy.Prediction(doubled=6)]


def test_status_hooks_in_the_run_fire_once_though_listed_in_settings_callbacks(lm):
    class Twice(dspy.Module):
        def __init__(self):
            super().__init__()
            self.tool = dspy.Tool(lambda x: 2 * x, name="double")

        def forward(self, x):
            assert len(dspy.settings.callbacks) == 1   # streamify's status callback
            return dspy.Prediction(y=self.tool(x=self.tool(x=x)))

    messages = [i.message for i in dspy.streamify(Twice(), async_streaming=False)(x=1)
                if isinstance(i, dspy.streaming.StatusMessage)]
    assert messages == ["Calling tool double...",
                        "Tool calling finished! Querying the LLM with tool calling results..."] * 2


def test_closing_the_stream_of_an_async_program_stops_a_stalled_model_at_once():
    from lazystream.engine import Faults, Turn

    # One token of the answer, then the model stalls for a minute: the cancel must not wait.
    engine = Engine(lambda request: Turn(tokens=["[[ ## answer ## ]]\nHello", " big", " world"]),
                    faults=Faults(stall=60, stall_after=1))
    program = AsyncQA()
    stream = dspy.streamify(program, stream_listeners=[StreamListener("answer")],
                            is_async_program=True, async_streaming=False)
    with engine as url:
        with dspy.context(lm=dspy.LM("openai/m", api_base=url, cache=False)):
            gen = stream(question="q")
            assert next(gen) == StreamResponse("predict", "answer", "Hello")
            gen.close()
        assert isinstance(program.outcomes.get(timeout=10), concurrent.futures.CancelledError)
        assert engine.wait_disconnects(1, timeout=10)


def test_an_async_program_reports_status_and_streams_reasoning(lm):
    class AsyncToolThenSum(dspy.Module):
        def __init__(self):
            super().__init__()
            self.tool = dspy.Tool(lambda x: 2 * x, name="double_the_number")
            self.predict = dspy.ChainOfThought("num1, num2->sum")

        async def aforward(self, num, **kwargs):
            num2 = await self.tool.acall(x=num)
            return await self.predict.acall(num1=num, num2=num2)

    stream = dspy.streamify(AsyncToolThenSum(), stream_listeners=[StreamListener("reasoning")],
                            is_async_program=True, async_streaming=False)
    with dspy.context(lm=lm):
        items = list(stream(num=3))
    statuses = [i.message for i in items if isinstance(i, dspy.streaming.StatusMessage)]
    chunks = [i for i in items if isinstance(i, StreamResponse)]
    assert statuses == ["Calling tool double_the_number...",
                        "Tool calling finished! Querying the LLM with tool calling results..."]
    assert items.index(chunks[0]) > 1    # the status messages come first, as they happened
    assert "".join(c.chunk for c in chunks) == items[-1].reasoning == (
        "To find the sum of the two numbers, we simply add them together. Here, 3 plus 6 equals 9.")
    assert {c.predict_name for c in chunks} == {"predict.predict"}
