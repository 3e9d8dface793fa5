"""Programs: Prediction, Module naming, Predict / ChainOfThought on the engine, LM, cache, settings."""
from __future__ import annotations

import threading
import uuid

import pytest

import lazystream
from lazystream.engine import Engine
from lazystream.programs import (LM, AdapterParseError, ChainOfThought, JSONAdapter, Module,
                                 Predict, Prediction, Tool, configure, settings)
from lazystream.programs import cache as lm_cache



# ---- Prediction -------------------------------------------------------------------------

def test_prediction_fields_by_attribute_and_key():
    pred = Prediction(answer="yes", score="N/A")
    assert (pred.answer, pred["score"]) == ("yes", "N/A")
    assert pred.keys() == ["answer", "score"] and "answer" in pred and len(pred) == 2
    assert pred == Prediction(answer="yes", score="N/A")


def test_prediction_repr_is_one_field_per_line():
    assert repr(Prediction(answer="I'm ready.", score="N/A")) == \
        "Prediction(\n    answer=\"I'm ready.\",\n    score='N/A'\n)"
    assert str(Prediction(answer="x")) == "Prediction(\n    answer='x'\n)"


def test_prediction_missing_field_lists_fields():
    with pytest.raises(AttributeError, match="Prediction has no field 'answr'; fields: answer"):
        Prediction(answer="x").answr


# ---- Module and named_predictors ---------------------------------------------------------

def test_bare_predict_is_named_self():
    p = Predict("question -> answer")
    assert p.named_predictors() == [("self", p)]


def test_chain_of_thought_holds_its_predict():
    cot = ChainOfThought("num1, num2 -> sum")
    assert cot.named_predictors() == [("predict", cot.predict)]
    assert list(cot.predict.signature.output_fields) == ["reasoning", "sum"]


def test_attribute_list_and_dict_paths_are_named_as_dspy():
    class Inner(Module):
        def __init__(self):
            super().__init__()
            self.predict = ChainOfThought("a -> b")

    class Program(Module):
        def __init__(self):
            super().__init__()
            self.predict1 = Predict("q -> a")
            self.inner = Inner()
            self.x = [Predict("q -> a"), ChainOfThought("q -> a")]
            self.y = {"k": Predict("q -> a")}
            self.again = self.predict1  # the same predictor is listed once

    prog = Program()
    assert [name for name, _ in prog.named_predictors()] == [
        "predict1", "inner.predict.predict", "x[0]", "x[1].predict", "y['k']"]
    assert prog.named_predictors()[0][1] is prog.predict1
    assert isinstance(prog, lazystream.ModuleBase)


# ---- Predict and ChainOfThought on the engine ------------------------------------------

def test_predict_fills_the_answer(lm):
    with settings.context(lm=lm):
        pred = Predict("question->answer")(question="Why did a chicken cross the kitchen?")
    assert pred == Prediction(answer="To get to the other side of the kitchen!")


def test_chain_of_thought_reasons_then_answers(lm):
    pred = ChainOfThought("num1, num2 -> sum")(num1=3, num2=6, lm=lm)
    assert pred.toDict() == {
        "reasoning": "To find the sum of the two numbers, we simply add them together. "
                     "Here, 3 plus 6 equals 9.", "sum": "9"}


def test_predict_with_json_adapter_and_typed_output(lm):
    with settings.context(lm=lm, adapter=JSONAdapter()):
        pred = Predict("num1: int, num2: int -> sum: int")(num1=3, num2=6)
    assert pred == Prediction(sum=9)


def test_missing_input_warns_and_is_left_out(lm, engine):
    with pytest.warns(UserWarning, match=r"input field\(s\) question not given") as record:
        pred = Predict("question, answer -> answer, score")(answer="42", lm=lm)
    assert record[0].filename == __file__
    assert pred == Prediction(answer="I'm ready to assist you! Please provide a question.",
                              score="N/A")
    assert "[[ ## question ## ]]" not in engine.requests[-1].last_user


def test_predict_takes_keywords_only(lm):
    with pytest.raises(ValueError, match=r"^Positional arguments are not allowed when calling "
                       r"`dspy.Predict`, must use keyword arguments that match your signature "
                       r"input fields: 'question'. For example: `predict\(question=input_value, "
                       r"...\)`.$"):
        Predict("question -> answer")("why?", lm=lm)


def test_predict_without_lm_says_how_to_configure():
    with pytest.raises(ValueError, match=r"^No LM is loaded. Please configure the LM using "
                       r"`dspy.configure\(lm=dspy.LM\(...\)\)`. e.g, "
                       r"`dspy.configure\(lm=dspy.LM\('openai/gpt-4o-mini'\)\)`$"):
        with settings.context(lm=None):
            Predict("question -> answer")(question="q")


def test_reply_without_the_field_raises_adapter_parse_error():
    # The ChatAdapter fails, falls back to the JSONAdapter (a second request), which fails too.
    with Engine("I will not use the format.") as url:
        with pytest.raises(AdapterParseError, match="JSONAdapter: the LM reply is not a JSON "
                           "object") as info:
            Predict("question -> answer")(question="q", lm=LM("openai/m", api_base=url, cache=False))
    assert "I will not use the format." in str(info.value)
    assert isinstance(info.value.__cause__, AdapterParseError)
    assert r"no [[ ## answer ## ]] field" in str(info.value.__cause__)


# ---- settings ----------------------------------------------------------------------------

def test_settings_context_is_per_thread_and_carries_into_workers(lm):
    other = LM("openai/other", api_base="http://127.0.0.1:9/v1")
    seen: dict[str, object] = {}
    barrier = threading.Barrier(2)

    def in_thread(name, value):
        with settings.context(lm=value):
            barrier.wait(timeout=5)
            seen[name] = settings.lm
            with lazystream.ThreadPoolExecutor(1) as pool:
                seen[name + "-worker"] = pool.submit(lambda: settings.lm).result()
            barrier.wait(timeout=5)

    threads = [threading.Thread(target=in_thread, args=("a", lm)),
               threading.Thread(target=in_thread, args=("b", other))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert seen == {"a": lm, "a-worker": lm, "b": other, "b-worker": other}


def test_configure_sets_the_default_and_settings_configure_is_the_same(lm):
    assert settings.configure == configure
    before = settings.get("lm")
    try:
        configure(lm=lm)
        assert settings.lm is lm
        with settings.context(lm=None):
            assert settings.lm is None
        assert settings.lm is lm
    finally:
        configure(lm=before)


def test_configure_rejects_wrong_types():
    with pytest.raises(TypeError, match="adapter must be an adapter instance"):
        configure(adapter="json")
    with pytest.raises(TypeError, match="lm must be an LM"):
        configure(lm=42)


# ---- LM --------------------------------------------------------------------------------

def test_provider_prefix_is_stripped(engine):
    lm = LM("openai/gpt-4o-mini", api_base=engine.base_url, cache=False)
    assert lm("hello") == ["hello"]
    assert engine.requests[-1].model == "gpt-4o-mini"
    assert LM("meta-llama/Llama-3-8B").model_name == "meta-llama/Llama-3-8B"


def test_lm_falls_back_to_openai_environment(engine, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", engine.base_url)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert LM("openai/gpt-4o-mini", cache=False)(messages=[{"role": "user", "content": "hi"}]) == ["hi"]


def test_lm_without_key_or_endpoint_names_the_variables(monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_BASE", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ValueError, match="set OPENAI_API_KEY.*OPENAI_BASE_URL"):
        LM("openai/gpt-4o-mini")("hi")


def test_cache_serves_from_memory_then_from_sqlite(engine):
    prompt = f"cache me {uuid.uuid4().hex}"
    before = len(engine.requests)
    assert LM("openai/m", api_base=engine.base_url)(prompt) == [prompt]
    assert LM("openai/m", api_base=engine.base_url)(prompt) == [prompt]   # memory
    lm_cache._memory.clear()
    assert LM("openai/m", api_base=engine.base_url)(prompt) == [prompt]   # SQLite file
    assert len(engine.requests) - before == 1
    assert LM("openai/m", api_base=engine.base_url, temperature=0.5)(prompt) == [prompt]
    assert LM("openai/m", api_base=engine.base_url, cache=False)(prompt) == [prompt]
    assert len(engine.requests) - before == 3


# ---- Tool ------------------------------------------------------------------------------

def test_tool_is_called_with_keywords():
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    tool = Tool(add)
    assert (tool.name, tool.desc, tool.args) == ("add", "Add two numbers.",
                                                 {"a": {"type": "integer"}, "b": {"type": "integer"}})
    assert tool(a=2, b=3) == 5
    doubler = Tool(lambda x: 2 * x, name="double_the_number")
    assert (doubler.name, doubler(x=3)) == ("double_the_number", 6)
