"""Adapters: the prompt they write, the replies they read, and the incremental field scanners."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from lazystream.programs import AdapterParseError, ChatAdapter, JSONAdapter, Prediction, Signature
from lazystream.programs.adapters.chat_markers import ChatFieldScanner, sections
from lazystream.programs.adapters.json_scanner import JSONFieldScanner

QA = Signature("question -> answer")
COT = Signature("num1, num2 -> reasoning, sum")


def _feed_all(scanner, pieces):
    out = []
    for piece in pieces:
        out += [(chunk, last) for _, chunk, last in scanner.feed(piece)]
    out += [(chunk, last) for _, chunk, last in scanner.finish()]
    return out


# ---- ChatAdapter: the prompt ------------------------------------------------------------

def test_chat_prompt_for_question_answer():
    system, user = ChatAdapter().format(QA, {"question": "Why?"})
    assert system == {"role": "system", "content": (
        "Your input fields are:\n1. `question` (str):\nYour output fields are:\n1. `answer` (str):"
        "\n\nAll interactions will be structured in the following way, with the appropriate "
        "values filled in.\n\n[[ ## question ## ]]\n{question}\n\n[[ ## answer ## ]]\n{answer}"
        "\n\n[[ ## completed ## ]]\n\nIn adhering to this structure, your objective is: "
        "\n        Given the fields `question`, produce the fields `answer`.")}
    assert user == {"role": "user", "content": (
        "[[ ## question ## ]]\nWhy?\n\nRespond with the corresponding output fields, starting "
        "with the field `[[ ## answer ## ]]`, and then ending with the marker for "
        "`[[ ## completed ## ]]`.")}


def test_chat_prompt_asks_for_the_outputs_in_order():
    user = ChatAdapter().format(COT, {"num1": "3", "num2": "6"})[1]["content"]
    assert user.endswith(
        "Respond with the corresponding output fields, starting with the field "
        "`[[ ## reasoning ## ]]`, then `[[ ## sum ## ]]`, and then ending with the marker for "
        "`[[ ## completed ## ]]`.")


def test_chat_prompt_notes_non_str_output_types():
    sig = Signature("q -> n: int")
    system, user = ChatAdapter().format(sig, {"q": "x"})
    assert "[[ ## n ## ]]\n{n}        # note: the value you produce must be a single int value" \
        in system["content"]
    assert "`[[ ## n ## ]]` (which must be a single int value)" in user["content"]


def test_missing_input_is_left_out():
    user = ChatAdapter().format(Signature("question, answer -> answer, score"),
                                {"answer": "42"})[1]["content"]
    assert user.startswith("[[ ## answer ## ]]\n42\n\nRespond with")
    assert "[[ ## question ## ]]" not in user


def test_non_string_inputs_are_rendered_readably():
    user = ChatAdapter().format(Signature("answer, data, n -> out"), {
        "answer": Prediction(answer="To get there."), "data": {"k": [1, 2]}, "n": 3,
    })[1]["content"]
    assert user.startswith(
        '[[ ## answer ## ]]\n{\n  "answer": "To get there."\n}\n\n'
        '[[ ## data ## ]]\n{\n  "k": [\n    1,\n    2\n  ]\n}\n\n[[ ## n ## ]]\n3\n\n')


# ---- ChatAdapter: parsing ---------------------------------------------------------------

def test_parse_reads_each_field_stripped():
    reply = "[[ ## reasoning ## ]]\n3 plus 6.\n\n[[ ## sum ## ]]\n9\n\n[[ ## completed ## ]]"
    assert ChatAdapter().parse(COT, reply) == {"reasoning": "3 plus 6.", "sum": "9"}


def test_parse_tolerates_whitespace_in_markers_and_a_missing_completed():
    reply = "  [[##reasoning##]] 3 plus 6.\n[[ ##  sum ## ]]\n 9 \n"
    assert ChatAdapter().parse(COT, reply) == {"reasoning": "3 plus 6.", "sum": "9"}


def test_parse_first_occurrence_wins():
    reply = "[[ ## answer ## ]]\nfirst\n[[ ## answer ## ]]\nsecond"
    assert ChatAdapter().parse(QA, reply) == {"answer": "first"}


def test_missing_field_names_it_and_shows_the_reply():
    reply = "[[ ## reasoning ## ]]\nthinking\n\n[[ ## completed ## ]]"
    with pytest.raises(AdapterParseError) as info:
        ChatAdapter().parse(COT, reply)
    message = str(info.value)
    assert "ChatAdapter: the LM reply has no [[ ## sum ## ]] field" in message
    assert reply in message
    assert info.value.lm_response == reply
    assert info.value.parsed_result == {"reasoning": "thinking"}


def test_parse_converts_typed_fields():
    sig = Signature("q -> n: int, ok: bool, tags: list[str], pick: Literal['a', 'b'], x: float")
    reply = ("[[ ## n ## ]]\n9\n[[ ## ok ## ]]\nTrue\n[[ ## tags ## ]]\n[\"x\", \"y\"]\n"
             "[[ ## pick ## ]]\n'b'\n[[ ## x ## ]]\n2")
    assert ChatAdapter().parse(sig, reply) == {"n": 9, "ok": True, "tags": ["x", "y"],
                                              "pick": "b", "x": 2.0}


def test_a_bad_typed_value_names_field_and_type():
    with pytest.raises(AdapterParseError, match=r"field `n` should be a int, got 'N/A'"):
        ChatAdapter().parse(Signature("q -> n: int"), "[[ ## n ## ]]\nN/A")


# ---- ChatAdapter: the field scanner ------------------------------------------------------

REPLY = ("[[ ## reasoning ## ]]\nAdd them: 3 plus 6.\n\n[[ ## sum ## ]]\n9\n\n"
         "[[ ## completed ## ]]")


def test_scanner_releases_text_as_it_arrives():
    scanner = ChatFieldScanner("answer")
    pieces = ["[[ ## answer", " ## ]]\n", "To", " get", " there", "!\n\n[", "[ ##", " completed ## ]]"]
    assert [[(c, last) for _, c, last in scanner.feed(p)] for p in pieces] == [
        [], [], [("To", False)], [(" get", False)], [(" there", False)], [("!", False)], [],
        [("", True)]]
    assert scanner.finish() == []


def test_scanner_holds_back_only_what_could_start_a_marker():
    scanner = ChatFieldScanner("answer")
    scanner.feed("[[ ## answer ## ]]\n")
    assert [c for _, c, _ in scanner.feed("a [b] [")] == ["a [b]"]
    assert [c for _, c, _ in scanner.feed("x")] == [" [x"]
    assert [c for _, c, _ in scanner.feed(" [[ ## sum")] == []
    assert [(c, last) for _, c, last in scanner.feed("mary ## ]]")] == [("", True)]


def test_scanner_one_chunk_field_is_one_last_chunk():
    scanner = ChatFieldScanner("answer")
    assert [(c, last) for _, c, last in scanner.feed(
        "[[ ## answer ## ]]\nHello world\n\n[[ ## completed ## ]]")] == [("Hello world", True)]


def test_scanner_marks_the_last_chunk_when_the_reply_ends_without_completed():
    assert _feed_all(ChatFieldScanner("sum"), ["[[ ## sum ## ]]\n", "9", "\n"]) == \
        [("9", False), ("", True)]


def test_scanner_ignores_a_field_that_never_comes():
    assert _feed_all(ChatFieldScanner("answer"), ["[[ ## other ## ]]\nx"]) == []


@pytest.mark.parametrize("field", ["reasoning", "sum"])
def test_markers_split_at_every_position(field):
    """Every way of cutting the reply into three pieces gives the parsed value, and one last chunk."""
    expected = sections(REPLY)[field]
    n = len(REPLY)
    for i in range(n + 1):
        for j in range(i, n + 1, 3):
            out = _feed_all(ChatFieldScanner(field), [REPLY[:i], REPLY[i:j], REPLY[j:]])
            assert "".join(c for c, _ in out) == expected, (i, j)
            assert [last for _, last in out].count(True) == 1 and out[-1][1], (i, j)


_text = st.text(alphabet=st.sampled_from(list("ab #[]\n ")), max_size=40)


@hsettings(max_examples=300, deadline=None)
@given(st.lists(_text, min_size=1, max_size=6), st.data())
def test_scanner_matches_parse_for_any_reply(parts, data):
    reply = "".join(p if i % 2 else f"[[ ## {p.strip('[]# ') or 'x'} ## ]]" for i, p in enumerate(parts))
    reply = data.draw(st.sampled_from(["", "[[ ## answer ## ]]"])) + reply
    cuts = sorted(data.draw(st.lists(st.integers(0, len(reply)), max_size=5)))
    pieces = [reply[a:b] for a, b in zip([0] + cuts, cuts + [len(reply)])]
    out = _feed_all(ChatFieldScanner("answer"), pieces)
    expected = sections(reply).get("answer")
    if expected is None:
        assert out == []
    else:
        assert "".join(c for c, _ in out) == expected
        assert [last for _, last in out].count(True) == 1 and out[-1][1]


# ---- JSONAdapter ----------------------------------------------------------------------

def test_json_prompt_asks_for_an_object():
    system, user = JSONAdapter().format(COT, {"num1": "3", "num2": "6"})
    assert 'Outputs will be a JSON object with the following fields.\n\n{\n  "reasoning": ' \
           '"{reasoning}",\n  "sum": "{sum}"\n}' in system["content"]
    assert user["content"] == ("[[ ## num1 ## ]]\n3\n\n[[ ## num2 ## ]]\n6\n\nRespond with a JSON "
                               "object in the following order of fields: `reasoning`, then `sum`.")


def test_json_parse_finds_the_object_in_a_code_fence():
    reply = 'Sure:\n```json\n{"reasoning": "  3 plus 6 ", "sum": 9}\n```'
    assert JSONAdapter().parse(Signature("a -> reasoning, sum: int"), reply) == \
        {"reasoning": "  3 plus 6 ", "sum": 9}


def test_json_parse_str_field_with_a_number_keeps_its_text():
    assert JSONAdapter().parse(COT, '{"reasoning": "r", "sum": 9}') == {"reasoning": "r", "sum": "9"}


def test_json_missing_key_names_it():
    with pytest.raises(AdapterParseError, match="JSONAdapter: the LM reply has no key 'sum'"):
        JSONAdapter().parse(COT, '{"reasoning": "r"}')


def test_json_not_an_object():
    with pytest.raises(AdapterParseError, match="not a JSON object"):
        JSONAdapter().parse(COT, "no json here")


def test_json_scanner_yields_decoded_text():
    reply = '{"reasoning": "line 1\\nsaid \\"hi\\" caf\\u00e9 \\ud83d\\ude00", "sum": 9}'
    out = _feed_all(JSONFieldScanner("reasoning"), [reply])
    assert out == [('line 1\nsaid "hi" café 😀', True)]


def test_json_scanner_escapes_split_at_every_position():
    value = 'a\nb "q" \\ / é 😀\tend'
    reply = json.dumps({"other": {"x": "[\"}"}, "answer": value, "n": [1, 2]})
    reply_ascii = json.dumps({"answer": value}, ensure_ascii=True)
    for text in (reply, reply_ascii):
        for i in range(len(text) + 1):
            for j in range(i, len(text) + 1, 4):
                out = _feed_all(JSONFieldScanner("answer"), [text[:i], text[i:j], text[j:]])
                assert "".join(c for c, _ in out) == value, (text, i, j)
                assert [last for _, last in out].count(True) == 1 and out[-1][1]


def test_json_scanner_skips_nested_values_of_other_keys():
    reply = '{"a": {"answer": "no", "b": [1, "}"]}, "answer": "yes"}'
    assert _feed_all(JSONFieldScanner("answer"), [reply]) == [("yes", True)]


def test_json_scanner_non_string_target_streams_its_raw_text():
    assert _feed_all(JSONFieldScanner("sum"), ['{"sum": 9', "}"]) == [("9", False), ("", True)]
    assert _feed_all(JSONFieldScanner("sum"), ['{"sum": 9}']) == [("9", True)]
    out = _feed_all(JSONFieldScanner("items"), ['{"items": ["a",', ' "b"] ', ' , "n": 1}'])
    assert out == [('["a",', False), (' "b"]', False), ("", True)]
    unterminated = _feed_all(JSONFieldScanner("sum"), ['{"sum": 12'])   # the reply was cut
    assert unterminated == [("12", False), ("", True)]


@hsettings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["answer", "a", "b"]), st.text(max_size=20), min_size=1),
       st.booleans(), st.data())
def test_json_scanner_matches_json_loads(obj, ascii_only, data):
    reply = json.dumps(obj, ensure_ascii=ascii_only)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(reply)), max_size=6)))
    pieces = [reply[a:b] for a, b in zip([0] + cuts, cuts + [len(reply)])]
    out = _feed_all(JSONFieldScanner("answer"), pieces)
    if "answer" in obj:
        assert "".join(c for c, _ in out) == obj["answer"]
        assert [last for _, last in out].count(True) == 1
    else:
        assert out == []

