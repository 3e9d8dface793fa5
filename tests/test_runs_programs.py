"""The run model on the DSPy side: each LM call is a message, usage is readable, errors
land in the run's own session, and cancelling does not wait for a stalled model."""
from __future__ import annotations

import asyncio

import pytest

import lazystream
from lazystream.engine import Engine, Faults
from lazystream.programs import LM, Predict, Prediction, settings
from lazystream.queue import read_session
from lazystream.streaming import StreamListener, streamify

USAGE = {"prompt_tokens", "completion_tokens", "total_tokens"}


def test_each_lm_call_of_a_streamed_program_is_one_message_with_usage(engine):
    lm = LM("openai/m", api_base=engine.base_url, cache=False)
    with settings.context(lm=lm):
        s = lazystream.stream(Predict("question->answer"), question="What is 2+2?")
        events = list(s)
    kinds = [e.kind for e in events]
    assert kinds[:2] == ["run_start", "message_start"] and kinds[-4:] == ["usage", "message_end", "run_end", "end"]
    assert "text" not in kinds   # no listener: one non-streaming request, still one message
    start, usage, end, run_end = (next(e for e in events if e.kind == k)
                                  for k in ("message_start", "usage", "message_end", "run_end"))
    assert start.data["model"] == "openai/m" and start.data["run"] == run_end.data["run"]
    assert usage.data["message"] == start.data["id"] == end.data["id"]
    assert end.data["finish_reason"] == "stop"
    assert run_end.data["usage"] == {k: usage.data[k] for k in USAGE}
    assert s.usage == run_end.data["usage"] and isinstance(s.result, Prediction)


def test_track_usage_puts_the_lm_usage_on_the_prediction_also_through_streamify(engine):
    lm = LM("openai/m", api_base=engine.base_url, cache=False)
    with settings.context(lm=lm, track_usage=True):
        direct = Predict("question->answer")(question="What is 2+2?")
        program = streamify(Predict("question->answer"), stream_listeners=[StreamListener("answer")],
                            async_streaming=False)
        streamed = [x for x in program(question="What is 2+2?") if isinstance(x, Prediction)][-1]
    [(model, usage)] = direct.get_lm_usage().items()
    assert model == "openai/m" and set(usage) == USAGE and usage["total_tokens"] > 0
    assert streamed.get_lm_usage() == direct.get_lm_usage()


def test_without_track_usage_there_is_none(engine):
    lm = LM("openai/m", api_base=engine.base_url, cache=False)
    with settings.context(lm=lm):
        assert Predict("question->answer")(question="hi").get_lm_usage() is None


class _Boom(Exception):
    pass


def test_a_failing_streamify_run_ends_error_then_run_end_then_end(own_session):
    seen = {}

    def program(question):
        seen["sid"] = lazystream.current_sid()
        raise _Boom("no answer")

    with pytest.raises(_Boom):
        list(streamify(program, async_streaming=False)(question="q"))
    events = read_session(seen["sid"])
    assert [(e.kind, e.data.get("status") if isinstance(e.data, dict) else None) for e in events] == [
        ("run_start", None), ("error", None), ("run_end", "error"), ("end", "error")]
    assert events[1].data == {"type": "_Boom", "message": "no answer"}
    assert read_session(own_session) == []


def test_closing_streamify_during_a_model_stall_closes_the_connection_at_once():
    """DSPy-side LM: the model sends the field's first words, then stalls for a minute;
    closing the generator must not wait for the stall (nor for the LM's read timeout)."""
    reply = "[[ ## answer ## ]]\nfour is the answer to that question here\n\n[[ ## completed ## ]]"
    engine = Engine(reply, model="m", faults=Faults(stall=60, stall_after=14))   # after " to"
    with engine as url:
        lm = LM("openai/m", api_base=url, cache=False)
        with settings.context(lm=lm):
            gen = streamify(Predict("question->answer"), stream_listeners=[StreamListener("answer")],
                            async_streaming=False)(question="What is 2+2?")
            assert next(gen).chunk.startswith("four")
            gen.close()
        assert engine.wait_disconnects(1, timeout=10)
    assert len(engine.requests) == 1


def test_lm_has_a_default_read_timeout():
    assert LM("openai/m").timeout == 120.0


def test_astream_of_a_program_ends_with_its_prediction(engine):
    lm = LM("openai/m", api_base=engine.base_url, cache=False)

    async def go():
        with settings.context(lm=lm):
            s = lazystream.astream(Predict("question->answer"), question="hi")
            events = [e async for e in s]
        return s, events

    s, events = asyncio.run(go())
    assert events[-1].data == {"status": "ok"} and isinstance(s.result, Prediction)


def test_cancelling_while_an_unlistened_predictor_waits_for_its_model_ends_that_request():
    """A predictor nobody listens to makes one non-streaming request; the model has not
    even sent its headers when the run is cancelled: the request is ended at once."""
    import threading

    asked = threading.Event()

    def policy(request):
        asked.set()
        return "[[ ## answer ## ]]\nfour\n\n[[ ## completed ## ]]"

    engine = Engine(policy, model="m", faults=Faults(stall=60, stall_after=0))
    with engine as url:
        lm = LM("openai/m", api_base=url, cache=False)
        with settings.context(lm=lm):
            s = lazystream.stream(Predict("question->answer"), question="q")
            assert asked.wait(30)
            s.cancel()
            events = list(s)
        assert engine.wait_disconnects(1, timeout=30)
    assert [e.kind for e in events][-4:] == ["message_start", "message_end", "run_end", "end"]
    assert events[-1].data == {"status": "cancelled"}
    assert len(engine.requests) == 1
