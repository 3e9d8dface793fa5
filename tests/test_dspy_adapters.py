"""DSPy 3's adapters: XMLAdapter, and the ChatAdapter's fallback to JSONAdapter."""
from __future__ import annotations

import pytest

import lazystream as dspy
from lazystream.engine import Engine, Turn
from lazystream.programs import Adapter
from lazystream.programs.adapters.xml_scanner import XMLFieldScanner
from lazystream.streaming import StreamListener, StreamResponse

pytestmark = pytest.mark.timeout(30)


class _Replies:
    """An engine policy answering each request with the next scripted token list."""

    def __init__(self):
        self.replies: list[list[str]] = []

    def __call__(self, request):
        return Turn(tokens=self.replies.pop(0))


@pytest.fixture(scope="module")
def scripted():
    policy = _Replies()
    with Engine(policy) as url:
        yield policy, dspy.LM("openai/m", api_base=url, cache=False)


# ---- XMLAdapter ------------------------------------------------------------------------------

def test_xml_adapter_prompt_is_dspys():
    class QA(dspy.Signature):
        """Answer the question."""
        question: str = dspy.InputField()
        answer: str = dspy.OutputField()
        score: float = dspy.OutputField(desc="confidence")

    system, user = dspy.XMLAdapter().format(QA, {"question": "Why?"})
    assert system == {"role": "system", "content": (
        "Your input fields are:\n1. `question` (str):\nYour output fields are:\n"
        "1. `answer` (str):\n2. `score` (float): confidence\n\n"
        "All interactions will be structured in the following way, with the appropriate values "
        "filled in.\n\n<question>\n{question}\n</question>\n\n<answer>\n{answer}\n</answer>\n\n"
        "<score>\n{score}        # note: the value you produce must be a single float value\n"
        "</score>\n\nIn adhering to this structure, your objective is: \n"
        "        Answer the question.")}
    assert user == {"role": "user", "content": (
        "<question>\nWhy?\n</question>\n\nRespond with the corresponding output fields wrapped "
        "in XML tags `<answer>`, then `<score>`.")}


def test_xml_adapter_parses_typed_fields_and_names_missing_ones():
    sig = dspy.Signature("question -> answer, n: int")
    adapter = dspy.XMLAdapter()
    assert adapter.parse(sig, "<answer>\n Forty two \n</answer>\n<n>42</n>") == \
        {"answer": "Forty two", "n": 42}
    with pytest.raises(dspy.AdapterParseError, match=r"XMLAdapter: the LM reply has no <n> "
                                                     r"element; expected <answer>, <n>"):
        adapter.parse(sig, "<answer>x</answer>")


def test_predict_with_xml_adapter_on_the_engine(lm):
    with dspy.context(lm=lm, adapter=dspy.XMLAdapter()):
        pred = dspy.ChainOfThought("num1, num2 -> sum: int")(num1=3, num2=6)
    assert pred == dspy.Prediction(
        reasoning="To find the sum of the two numbers, we simply add them together. Here, "
                  "3 plus 6 equals 9.", sum=9)


def test_xml_scanner_split_at_every_position_releases_the_parsed_text():
    reply = "<reasoning>\nThink.\n</reasoning>\n<answer>\n Hello <b> world \n</answer>"
    for cut in range(1, len(reply)):
        scanner = XMLFieldScanner("answer")
        released = scanner.feed(reply[:cut]) + scanner.feed(reply[cut:]) + scanner.finish()
        assert "".join(chunk for _, chunk, _ in released) == "Hello <b> world", cut
        assert [last for _, _, last in released].count(True) == 1 and released[-1][2], cut


def test_streaming_a_field_with_the_xml_adapter(scripted):
    policy, lm = scripted
    policy.replies = [["<answer>", "\nTo", " get", " there", "!\n</", "answer>"]]
    stream = dspy.streamify(dspy.Predict("question->answer"),
                            stream_listeners=[StreamListener("answer")], async_streaming=False)
    with dspy.context(lm=lm, adapter=dspy.XMLAdapter()):
        items = list(stream(question="q"))
    assert items == [StreamResponse("self", "answer", "To"), StreamResponse("self", "answer", " get"),
                     StreamResponse("self", "answer", " there"),
                     StreamResponse("self", "answer", "!"),
                     StreamResponse("self", "answer", "", True),
                     dspy.Prediction(answer="To get there!")]


# ---- ChatAdapter -> JSONAdapter fallback -----------------------------------------------------

def test_a_model_that_answers_json_is_read_by_the_json_fallback():
    engine = Engine('{"answer": "Forty-two."}')
    with engine as url:
        lm = dspy.LM("openai/m", api_base=url, cache=False)
        with dspy.context(lm=lm):
            pred = dspy.Predict("question -> answer")(question="What is the answer?")
        assert pred == dspy.Prediction(answer="Forty-two.")
        chat_request, json_request = engine.requests
    assert chat_request.last_user.endswith("and then ending with the marker for "
                                           "`[[ ## completed ## ]]`.")
    assert json_request.last_user.endswith("Respond with a JSON object in the following "
                                           "order of fields: `answer`.")


def test_fallback_can_be_turned_off():
    engine = Engine('{"answer": "Forty-two."}')
    with engine as url:
        lm = dspy.LM("openai/m", api_base=url, cache=False)
        with dspy.context(lm=lm, adapter=dspy.ChatAdapter(use_json_adapter_fallback=False)):
            with pytest.raises(dspy.AdapterParseError, match=r"no \[\[ ## answer ## \]\] field"):
                dspy.Predict("question -> answer")(question="q")
        assert len(engine.requests) == 1


def test_the_json_fallback_call_streams_the_listened_field(scripted):
    policy, lm = scripted
    policy.replies = [['{"answer": ', '"Forty-two."}'], ['{"answer": "Forty', '-two."}']]
    stream = dspy.streamify(dspy.Predict("question->answer"),
                            stream_listeners=[StreamListener("answer")], async_streaming=False)
    with dspy.context(lm=lm):
        items = list(stream(question="q"))
    # The ChatAdapter call found no marker and streamed nothing; the JSONAdapter call streams.
    assert items == [StreamResponse("self", "answer", "Forty"),
                     StreamResponse("self", "answer", "-two.", True),
                     dspy.Prediction(answer="Forty-two.")]


def test_async_predict_falls_back_too(scripted):
    import asyncio

    policy, lm = scripted
    policy.replies = [['{"answer": "A."}'], ['{"answer": "A."}']]

    async def main():
        with dspy.context(lm=lm):
            return await dspy.Predict("question->answer").acall(question="q")

    assert asyncio.run(main()) == dspy.Prediction(answer="A.")
    assert policy.replies == []


# ---- typed outputs: pydantic models ------------------------------------------------------------

from pydantic import BaseModel  # noqa: E402 - grouped with the tests that use it


class Person(BaseModel):
    name: str
    age: int


def test_a_pydantic_output_field_is_described_by_its_schema_and_parsed_to_the_model(scripted):
    policy, lm = scripted

    class Extract(dspy.Signature):
        text: str = dspy.InputField()
        person: Person = dspy.OutputField()

    policy.replies = [['[[ ## person ## ]]\n{"name": "Ada", "age": 36}\n\n[[ ## completed ## ]]']]
    with dspy.context(lm=lm):
        pred = dspy.Predict(Extract)(text="Ada is 36.")
    assert pred.person == Person(name="Ada", age=36)
    system, _ = dspy.ChatAdapter().format(Extract, {"text": "x"})
    assert ('{person}        # note: the value you produce must adhere to the JSON schema: '
            '{"properties": {"name": {"title": "Name", "type": "string"}, "age": {"title": "Age", '
            '"type": "integer"}}, "required": ["name", "age"], "title": "Person", "type": "object"}'
            ) in system["content"]


def test_prediction_items_leave_out_dspy_internal_fields():
    pred = dspy.Prediction(answer="a", dspy_uuid="x")
    assert pred.items() == [("answer", "a")]
    assert pred.keys(include_dspy=True) == ["answer", "dspy_uuid"]


def test_a_users_chat_adapter_subclass_streams_as_the_chat_adapter(scripted):
    class LoggingAdapter(dspy.ChatAdapter):
        def __init__(self, log):
            super().__init__()
            self.log = log

        def format(self, signature, inputs):
            self.log.append("format")
            return super().format(signature, inputs)

    policy, lm = scripted
    policy.replies = [["[[ ## answer ## ]]\nHi", " there\n\n[[ ## completed ## ]]"]]
    log = []
    stream = dspy.streamify(dspy.Predict("question->answer"),
                            stream_listeners=[StreamListener("answer")], async_streaming=False)
    with dspy.context(lm=lm, adapter=LoggingAdapter(log)):
        items = list(stream(question="q"))
    assert items == [StreamResponse("self", "answer", "Hi"),
                     StreamResponse("self", "answer", " there", True),
                     dspy.Prediction(answer="Hi there")]
    assert log == ["format"]
    assert type(Adapter.by_name("chat")) is dspy.ChatAdapter


def test_a_subclass_written_for_dspy_format_signature_is_called_with_no_demos(lm):
    class Tagged(dspy.ChatAdapter):
        def format(self, signature, demos, inputs):
            assert demos == []
            messages = super().format(signature, demos, inputs)   # DSPy's call
            messages[0]["content"] += "\n\nBe brief."
            return messages

    with dspy.context(lm=lm, adapter=Tagged()):
        assert dspy.Predict("question -> answer")(question="What is 3 + 4?").answer == "3 + 4 is 7."
    with pytest.raises(ValueError, match=r"few-shot demos are not supported by lazystream, got 1 "
                                         r"demo\(s\); pass demos=\[\]"):
        dspy.ChatAdapter().format(dspy.Signature("q -> a"), [{"q": "1", "a": "2"}], {"q": "3"})
