"""The wire adapters as pure functions, on hand-built runs (the event contract), each output
checked exactly and by the format's own client: the `ai` package's parser under Node, the
`ag-ui-protocol` models, the `openai` SDK's types."""
from __future__ import annotations

import json

import pytest
from pydantic import TypeAdapter

from lazystream.web.adapters import agui_events, openai_chunks, openai_completion, vercel_chunks
from webkit import cancelled_run, check_ui_stream, ev, failed_run, tool_run

USAGE = {"prompt_tokens": 30, "completion_tokens": 9, "total_tokens": 39}


def _sse(chunks) -> bytes:
    return b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"


# --- Vercel AI SDK UI message stream v1 ----------------------------------------------------------

VERCEL_TOOL_RUN = [
    {"type": "start", "messageId": "r1"},
    {"type": "reasoning-start", "id": "m1:reasoning"},
    {"type": "reasoning-delta", "id": "m1:reasoning", "delta": "Need the tool."},
    {"type": "tool-input-start", "toolCallId": "c1", "toolName": "get_current_weather"},
    {"type": "tool-input-delta", "toolCallId": "c1", "inputTextDelta": '{"location": "Tok'},
    {"type": "tool-input-delta", "toolCallId": "c1", "inputTextDelta": 'yo"}'},
    {"type": "tool-input-available", "toolCallId": "c1", "toolName": "get_current_weather",
     "input": {"location": "Tokyo"}},
    {"type": "reasoning-end", "id": "m1:reasoning"},
    {"type": "tool-output-available", "toolCallId": "c1", "output": '{"temperature": "10"}'},
    {"type": "data-status", "data": "composing the answer", "transient": True},
    {"type": "text-start", "id": "m2"},
    {"type": "text-delta", "id": "m2", "delta": "It is "},
    {"type": "text-delta", "id": "m2", "delta": "10 C."},
    {"type": "text-end", "id": "m2"},
    {"type": "finish", "finishReason": "stop", "messageMetadata": {"status": "ok", "usage": USAGE}},
]


def test_vercel_projection_of_a_tool_run_is_exact():
    assert list(vercel_chunks(tool_run())) == VERCEL_TOOL_RUN


def test_vercel_projection_of_a_tool_run_passes_the_ai_sdk_parser():
    report = check_ui_stream(stdin=_sse(vercel_chunks(tool_run())))
    assert report["invalid"] == [] and report["error"] is None
    # transient data parts are not kept in the message, as useChat does
    assert report["chunks"] == VERCEL_TOOL_RUN
    assert report["final"] == {"id": "r1", "role": "assistant", "metadata": {"status": "ok", "usage": USAGE},
                               "parts": [
        {"type": "reasoning", "id": "m1:reasoning", "text": "Need the tool.", "state": "done"},
        {"type": "tool-get_current_weather", "toolCallId": "c1", "state": "output-available",
         "input": {"location": "Tokyo"}, "output": '{"temperature": "10"}'},
        {"type": "text", "text": "It is 10 C.", "state": "done"},
    ]}


def test_vercel_failed_and_cancelled_runs_pass_the_parser():
    failed = list(vercel_chunks(failed_run()))
    assert failed == [{"type": "start", "messageId": "r2"}, {"type": "text-start", "id": "m1"},
                      {"type": "text-delta", "id": "m1", "delta": "Part"}, {"type": "text-end", "id": "m1"},
                      {"type": "error", "errorText": "LLMStreamError: the stream was cut"},
                      {"type": "finish", "finishReason": "error",
                       "messageMetadata": {"status": "error", "usage": None}}]
    report = check_ui_stream(stdin=_sse(failed))
    assert report["invalid"] == []
    assert report["error"] == "LLMStreamError: the stream was cut"   # terminateOnError: the client sees it
    cancelled = list(vercel_chunks(cancelled_run()))
    assert cancelled[-2:] == [{"type": "text-end", "id": "m1"}, {"type": "abort"}]
    report = check_ui_stream(stdin=_sse(cancelled))
    assert (report["invalid"], report["error"]) == ([], None)
    assert report["final"]["parts"] == [{"type": "text", "text": "Par", "state": "done"}]


def test_vercel_tokens_outside_any_message_get_one_part_closed_at_the_end():
    events = [ev(1, "text", "a", ns=("m",)), ev(2, "text", "b", ns=("m",)), ev(3, "end", {"status": "ok"}, ns=())]
    chunks = list(vercel_chunks(events))
    assert chunks == [{"type": "start", "messageId": "s1"}, {"type": "text-start", "id": "msg_s1_1"},
                      {"type": "text-delta", "id": "msg_s1_1", "delta": "a"},
                      {"type": "text-delta", "id": "msg_s1_1", "delta": "b"},
                      {"type": "text-end", "id": "msg_s1_1"},
                      {"type": "finish", "finishReason": "stop", "messageMetadata": {"status": "ok", "usage": None}}]
    report = check_ui_stream(stdin=_sse(chunks))
    assert (report["invalid"], report["error"]) == ([], None)


# --- AG-UI ----------------------------------------------------------------------------------------

def _agui_validate(events: list[dict]) -> list:
    from ag_ui.core import Event
    adapter = TypeAdapter(Event)
    return [adapter.validate_python(e) for e in events]


def test_agui_projection_of_a_tool_run_is_exact_and_valid():
    out = list(agui_events(tool_run()))
    assert [e["type"] for e in out] == [
        "RUN_STARTED", "REASONING_START", "REASONING_MESSAGE_START", "REASONING_MESSAGE_CONTENT",
        "REASONING_MESSAGE_END", "REASONING_END", "TOOL_CALL_START", "TOOL_CALL_ARGS", "TOOL_CALL_ARGS",
        "TOOL_CALL_END", "TOOL_CALL_RESULT", "CUSTOM", "TEXT_MESSAGE_START", "TEXT_MESSAGE_CONTENT",
        "TEXT_MESSAGE_CONTENT", "TEXT_MESSAGE_END", "RUN_FINISHED"]
    assert out[0] == {"type": "RUN_STARTED", "threadId": "s1", "runId": "r1"}
    assert out[6] == {"type": "TOOL_CALL_START", "toolCallId": "c1", "toolCallName": "get_current_weather",
                      "parentMessageId": "m1"}
    assert "".join(e["delta"] for e in out if e["type"] == "TOOL_CALL_ARGS") == '{"location": "Tokyo"}'
    assert out[10] == {"type": "TOOL_CALL_RESULT", "messageId": "c1:result", "toolCallId": "c1",
                       "content": '{"temperature": "10"}', "role": "tool"}
    assert out[-1] == {"type": "RUN_FINISHED", "threadId": "s1", "runId": "r1", "result": "It is 10 C."}
    models = _agui_validate(out)
    assert [m.type.value for m in models] == [e["type"] for e in out]
    # the models serialise back to exactly what was sent
    assert [m.model_dump(by_alias=True, exclude_none=True, mode="json") for m in models] == out


def test_agui_ids_from_the_client_and_the_failed_and_cancelled_runs():
    out = list(agui_events(failed_run(), thread_id="t-9", run_id="run-9"))
    assert out[0] == {"type": "RUN_STARTED", "threadId": "t-9", "runId": "run-9"}
    assert out[-1] == {"type": "RUN_ERROR", "message": "the stream was cut", "code": "LLMStreamError"}
    assert sum(e["type"] == "RUN_ERROR" for e in out) == 1   # terminal: run_end/end add nothing after it
    cancelled = list(agui_events(cancelled_run()))
    assert cancelled[-1] == {"type": "RUN_FINISHED", "threadId": "s1", "runId": "r3", "outcome": {"type": "cancelled"}}
    _agui_validate(out)
    _agui_validate(cancelled)


def test_agui_text_after_a_tool_call_in_the_same_message_continues_under_a_new_id():
    events = [ev(1, "run_start", {"run": "r", "name": "n", "input": None}, ns=()),
              ev(2, "message_start", {"id": "m", "run": "r", "role": "assistant", "model": None}),
              ev(3, "text", "Checking."),
              ev(4, "tool_call", {"id": "c", "name": "f", "arguments": {"x": 1}, "message": "m"}),
              ev(5, "text", "Done."),
              ev(6, "message_end", {"id": "m", "finish_reason": "tool_calls"})]
    out = list(agui_events(events))
    assert out[1:] == [
        {"type": "TEXT_MESSAGE_START", "messageId": "m", "role": "assistant"},
        {"type": "TEXT_MESSAGE_CONTENT", "messageId": "m", "delta": "Checking."},
        {"type": "TEXT_MESSAGE_END", "messageId": "m"},
        {"type": "TOOL_CALL_START", "toolCallId": "c", "toolCallName": "f", "parentMessageId": "m"},
        {"type": "TOOL_CALL_ARGS", "toolCallId": "c", "delta": '{"x": 1}'},
        {"type": "TOOL_CALL_END", "toolCallId": "c"},
        {"type": "TEXT_MESSAGE_START", "messageId": "m:1", "role": "assistant"},
        {"type": "TEXT_MESSAGE_CONTENT", "messageId": "m:1", "delta": "Done."},
        {"type": "TEXT_MESSAGE_END", "messageId": "m:1"}]
    _agui_validate(out)


# --- OpenAI Chat Completions ------------------------------------------------------------------

def test_openai_chunks_of_a_tool_run_are_exact_and_parse_as_sdk_types():
    from openai.types.chat import ChatCompletionChunk
    chunks = list(openai_chunks(tool_run(), model="weather", include_usage=True))
    deltas = [c["choices"][0]["delta"] if c["choices"] else None for c in chunks]
    assert deltas == [{"role": "assistant", "content": ""}, {"reasoning_content": "Need the tool."},
                      {"content": "It is "}, {"content": "10 C."}, {}, None]
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"] == USAGE
    assert {(c["id"], c["model"], c["created"]) for c in chunks} == {("chatcmpl-s1", "weather", 1_700_000_001)}
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)


def test_openai_completion_joins_the_answer_and_fails_like_the_run():
    from openai.types.chat import ChatCompletion
    completion = openai_completion(tool_run(), model="weather")
    ChatCompletion.model_validate(completion)
    assert completion["choices"][0]["message"] == {"role": "assistant", "content": "It is 10 C.",
                                                   "reasoning_content": "Need the tool."}
    assert completion["usage"] == USAGE
    with pytest.raises(RuntimeError, match="LLMStreamError: the stream was cut"):
        openai_completion(failed_run(), model="weather")
    with pytest.raises(RuntimeError, match="cancelled"):
        openai_completion(cancelled_run(), model="weather")


def test_openai_text_of_two_model_calls_is_separated_by_a_blank_line():
    events = [ev(1, "message_start", {"id": "a", "run": "r", "role": "assistant", "model": None}),
              ev(2, "text", "first"), ev(3, "message_end", {"id": "a", "finish_reason": "stop"}),
              ev(4, "message_start", {"id": "b", "run": "r", "role": "assistant", "model": None}),
              ev(5, "text", "second"), ev(6, "message_end", {"id": "b", "finish_reason": "length"}),
              ev(7, "end", {"status": "ok"}, ns=())]
    completion = openai_completion(events, model="m")
    assert completion["choices"][0]["message"]["content"] == "first\n\nsecond"
    assert completion["choices"][0]["finish_reason"] == "length"


def test_a_run_that_streamed_no_text_answers_with_its_string_output_in_every_format():
    events = [ev(1, "run_start", {"run": "r", "name": "f", "input": "x"}, ns=()),
              ev(2, "run_end", {"run": "r", "status": "ok", "error": None, "output": "the answer", "usage": None},
                 ns=()),
              ev(3, "end", {"status": "ok"}, ns=())]
    assert openai_completion(events, model="f")["choices"][0]["message"]["content"] == "the answer"
    chunks = list(vercel_chunks(events))
    assert chunks[1:4] == [{"type": "text-start", "id": "r:output"},
                           {"type": "text-delta", "id": "r:output", "delta": "the answer"},
                           {"type": "text-end", "id": "r:output"}]
    report = check_ui_stream(stdin=_sse(chunks))
    assert report["final"]["parts"] == [{"type": "text", "text": "the answer", "state": "done"}]
    out = list(agui_events(events))
    assert [e["type"] for e in out] == ["RUN_STARTED", "TEXT_MESSAGE_START", "TEXT_MESSAGE_CONTENT",
                                        "TEXT_MESSAGE_END", "RUN_FINISHED"]
    _agui_validate(out)
