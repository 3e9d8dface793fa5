"""The web edge end to end: the seed's weather agent on the bundled engine behind the app,
read by the real clients (openai SDK, the `ai` package's chat transport under Node, AG-UI
models), and the limits and access rules the app holds."""
from __future__ import annotations

import json
import socket
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import lazystream
from lazystream.queue import read_session
from lazystream.web import SessionServer
from webkit import WAIT, check_ui_stream, sse_data

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
import weather_agent  # noqa: E402,F401  (registers the seed's two tools)
from weather_policy import WeatherPolicy  # noqa: E402

QUERY = "What's the weather like today in celsius in Tokyo and Paris."
ANSWER = "The current weather in Tokyo is 10 degrees Celsius, and in Paris, it is 22 degrees Celsius."


@pytest.fixture(scope="module")
def weather_engine():
    from lazystream.engine import Engine
    engine = Engine(WeatherPolicy())
    engine.start()
    yield engine
    engine.stop()


def make_agent(base_url: str):
    from lazystream.llm.online import OnlineChatModule
    from lazystream.tools import FunctionCallAgent
    llm = OnlineChatModule(model="lazystream-engine", base_url=base_url, api_key="unused", stream=True)
    return FunctionCallAgent(llm, ["get_current_weather", "get_n_day_weather_forecast"])


@pytest.fixture
def app_server(weather_engine, fresh_home):
    with SessionServer(modules={"weather": make_agent(weather_engine.base_url)}) as server:
        yield server


def request(url: str, body=None, *, method=None, headers=None, timeout=WAIT) -> tuple[int, dict, bytes]:
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def start_run(server, value=QUERY, headers=None) -> str:
    status, _, body = request(f"{server.url}/runs", {"module": "weather", "input": value}, headers=headers)
    assert status == 201, body
    return json.loads(body)["sid"]


# --- runs and their streams -----------------------------------------------------------------

def test_a_run_started_over_http_streams_its_whole_session_as_ndjson(app_server):
    sid = start_run(app_server)
    assert sid.startswith("run-") and len(sid) == 4 + 32    # 128 random bits
    status, headers, body = request(f"{app_server.url}/sessions/{sid}/events?format=ndjson")
    assert (status, headers["content-type"]) == (200, "application/x-ndjson")
    lines = [json.loads(line) for line in body.decode().splitlines()]
    assert lines == [e.to_dict() for e in read_session(sid)]
    kinds = [line["kind"] for line in lines]
    assert kinds[0] == "run_start" and kinds[-2:] == ["run_end", "end"]
    assert "".join(line["data"] for line in lines if line["kind"] == "text") == ANSWER
    assert [line["data"]["name"] for line in lines if line["kind"] == "tool_result"] == ["get_current_weather"] * 2
    status, _, body = request(f"{app_server.url}/runs")
    assert json.loads(body)["runs"][0] | {"started": 0, "finished": 0} == {
        "sid": sid, "module": "weather", "status": "ok", "started": 0, "finished": 0, "error": None}
    status, _, body = request(f"{app_server.url}/sessions/{sid}")
    assert json.loads(body) == {"sid": sid, "events": len(lines), "last_seq": lines[-1]["seq"], "ended": True,
                                "status": "ok", "module": "weather"}


def test_sse_resumes_after_the_last_event_id_with_exactly_the_rest(app_server):
    sid = start_run(app_server)
    _, _, body = request(f"{app_server.url}/sessions/{sid}/events")
    events = [json.loads(d) for d in sse_data(body.decode()) if d != "[DONE]"]
    cut = events[len(events) // 2]["seq"]
    _, _, rest = request(f"{app_server.url}/sessions/{sid}/events", headers={"Last-Event-ID": str(cut)})
    again = [json.loads(d) for d in sse_data(rest.decode()) if d != "[DONE]"]
    assert again == [e for e in events if e["seq"] > cut]
    assert sse_data(rest.decode())[-1] == "[DONE]"
    assert sum(e["kind"] == "end" for e in events) == 1


def test_a_run_of_an_unknown_module_or_without_input_is_refused(app_server):
    status, _, body = request(f"{app_server.url}/runs", {"module": "nope", "input": "x"})
    assert (status, json.loads(body)["parameter"]) == (404, "module")
    assert "served: ['weather']" in json.loads(body)["error"]
    status, _, body = request(f"{app_server.url}/runs", {"module": "weather"})
    assert (status, json.loads(body)["parameter"]) == (400, "body")
    status, _, body = request(f"{app_server.url}/runs", b"{not json")
    assert status == 400 and "not JSON" in json.loads(body)["error"]


# --- the real clients ---------------------------------------------------------------------------

def test_the_openai_sdk_lists_the_module_and_streams_the_answer_with_usage(app_server):
    import openai
    client = openai.OpenAI(base_url=f"{app_server.url}/v1", api_key="unused", max_retries=0)
    assert [m.id for m in client.models.list()] == ["weather"]
    stream = client.chat.completions.create(model="weather", messages=[{"role": "user", "content": QUERY}],
                                            stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ANSWER
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    usage = chunks[-1].usage
    sid = chunks[0].id.removeprefix("chatcmpl-")
    totals = [e.data for e in read_session(sid) if e.kind == "usage"]
    assert usage.total_tokens == sum(u["total_tokens"] for u in totals) > 0
    completion = client.chat.completions.create(model="weather", messages=[{"role": "user", "content": QUERY}])
    assert completion.choices[0].message.content == ANSWER
    assert completion.choices[0].finish_reason == "stop"


class _Recall(lazystream.ModuleBase):
    """Answers with what it was asked and the earlier turns it was given."""

    def forward(self, input, llm_chat_history=None):
        return json.dumps({"input": input, "history": llm_chat_history})


def test_chat_routes_pass_the_earlier_turns_as_llm_chat_history(fresh_home):
    import openai
    turns = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "q1"},
             {"role": "assistant", "content": "a1"}, {"role": "user", "content": "q2"}]
    with SessionServer(modules={"recall": _Recall(), "plain": lambda x: x}) as server:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
        answer = client.chat.completions.create(model="recall", messages=turns).choices[0].message.content
        assert json.loads(answer) == {"input": "q2", "history": [["q1", "a1"]]}
        # a module without llm_chat_history gets the last question alone
        assert client.chat.completions.create(model="plain", messages=turns).choices[0].message.content == "q2"


def test_the_openai_sdk_gets_an_api_error_for_an_unknown_model(app_server):
    import openai
    client = openai.OpenAI(base_url=f"{app_server.url}/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.NotFoundError, match="no module 'gpt-4'"):
        client.chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": "hi"}])


def test_the_ai_sdk_chat_transport_reads_the_agent_as_one_ui_message(app_server):
    report = check_ui_stream("--url", f"{app_server.url}/api/chat", QUERY)
    assert (report["invalid"], report["error"]) == ([], None)
    assert report["headers"]["x-vercel-ai-ui-message-stream"] == "v1"
    parts = report["final"]["parts"]
    tools = [p for p in parts if p["type"] == "tool-get_current_weather"]
    assert [(p["state"], p["input"]) for p in tools] == [
        ("output-available", {"location": "Tokyo", "unit": "celsius"}),
        ("output-available", {"location": "Paris", "unit": "celsius"})]
    assert [json.loads(p["output"])["location"] for p in tools] == ["Tokyo", "Paris"]
    assert [p["text"] for p in parts if p["type"] == "text"] == [ANSWER]
    assert report["final"]["metadata"]["status"] == "ok"


def test_agui_run_agent_input_in_valid_agui_events_out(app_server):
    from ag_ui.core import Event, RunAgentInput, UserMessage
    from pydantic import TypeAdapter
    run_input = RunAgentInput(thread_id="thread-1", run_id="run-1", state=None, tools=[], context=[],
                              forwarded_props=None,
                              messages=[UserMessage(id="u1", role="user", content=QUERY)])
    status, headers, body = request(f"{app_server.url}/agui",
                                    run_input.model_dump(by_alias=True, exclude_none=True).__repr__().encode()
                                    if False else json.dumps(run_input.model_dump(by_alias=True, mode="json")).encode(),
                                    headers={"Accept": "text/event-stream"})
    assert status == 200, body
    adapter = TypeAdapter(Event)
    events = [adapter.validate_python(json.loads(d)) for d in sse_data(body.decode())]
    types = [e.type.value for e in events]
    assert types[0] == "RUN_STARTED" and types[-1] == "RUN_FINISHED"
    assert (events[0].thread_id, events[0].run_id) == ("thread-1", "run-1")
    assert types.count("TOOL_CALL_START") == types.count("TOOL_CALL_END") == types.count("TOOL_CALL_RESULT") == 2
    assert "".join(e.delta for e in events if e.type.value == "TEXT_MESSAGE_CONTENT") == ANSWER


# --- limits -----------------------------------------------------------------------------------------

def test_a_body_over_max_body_gets_413_and_starts_nothing(weather_engine, fresh_home):
    with SessionServer(modules={"weather": make_agent(weather_engine.base_url)}, max_body=1000) as server:
        status, _, body = request(f"{server.url}/runs", {"module": "weather", "input": "x" * 2000})
        assert status == 413 and "over the limit of 1000 bytes" in json.loads(body)["error"]
        assert json.loads(request(f"{server.url}/runs")[2])["runs"] == []


def test_at_max_streams_a_new_stream_gets_503(fresh_home):
    lazystream.FileSystemQueue().enqueue("x", sid="open-session")
    lazystream.queue.backend().sync()
    with SessionServer(max_streams=1) as server:
        first = urllib.request.urlopen(f"{server.url}/sessions/open-session/events", timeout=WAIT)
        try:
            assert first.readline().startswith(b"id: ")
            status, headers, body = request(f"{server.url}/sessions/open-session/events")
            assert (status, headers["retry-after"]) == (503, "1")
            assert "the limit (max_streams) is 1" in json.loads(body)["error"]
        finally:
            first.close()
        assert server.wait_idle(WAIT)


def test_a_connection_that_sends_no_request_is_closed_after_header_timeout(fresh_home):
    with SessionServer(header_timeout=0.3) as server:
        with socket.create_connection((server.host, server.port), timeout=WAIT) as idle:
            assert idle.recv(1) == b""   # closed by the server, not by our timeout


def test_connections_over_max_connections_get_503(fresh_home):
    with SessionServer(max_connections=2, header_timeout=30) as server:
        idle = [socket.create_connection((server.host, server.port), timeout=WAIT) for _ in range(2)]
        try:
            status, _, _ = request(f"{server.url}/runs")
            assert status == 503
        finally:
            for s in idle:
                s.close()


def test_a_client_that_stops_reading_is_dropped_and_the_server_holds_no_backlog(fresh_home):
    sid = "flood"
    payload = "x" * 1000
    with lazystream.session(sid):
        q = lazystream.FileSystemQueue()
        for _ in range(20000):   # 20 MB: more than the socket buffers of both ends hold
            q.enqueue(payload)
    lazystream.queue.backend().sync()
    with SessionServer(send_timeout=0.5) as server:
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect((server.host, server.port))
        stalled.sendall(f"GET /sessions/{sid}/events HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert stalled.recv(16).startswith(b"HTTP/1.1 200")
        try:
            assert server.wait_idle(WAIT), "the server kept a stream to a client that reads nothing"
            hub = server.app.state.edge.hub.stats()
            assert hub["clients"] == 0
        finally:
            stalled.close()


# --- access ---------------------------------------------------------------------------------------

TOKEN_A, TOKEN_B = "token-alice-123", "token-bob-4567"


@pytest.fixture
def guarded(weather_engine, fresh_home):
    with SessionServer(modules={"weather": make_agent(weather_engine.base_url)}, token=[TOKEN_A, TOKEN_B]) as server:
        yield server


def test_with_tokens_every_api_route_needs_one(guarded):
    for path, body in [("/runs", None), ("/api/modules", None), ("/v1/models", None),
                       ("/runs", {"module": "weather", "input": "x"}), ("/sessions/any/events", None)]:
        status, headers, answer = request(guarded.url + path, body)
        assert status == 401, path
        assert headers["www-authenticate"] == 'Bearer realm="lazystream"'
        error = json.loads(answer)["error"]
        assert "Authorization: Bearer <token>" in (error["message"] if path.startswith("/v1/") else error)
    status, _, _ = request(guarded.url + "/runs", headers={"Authorization": "Bearer wrong-token-000"})
    assert status == 401
    status, _, _ = request(guarded.url + "/")
    assert status == 200   # the page itself holds no data; it asks for the token


def test_a_run_is_readable_only_with_the_token_that_started_it_and_no_oracle(guarded):
    alice = {"Authorization": f"Bearer {TOKEN_A}"}
    bob = {"Authorization": f"Bearer {TOKEN_B}"}
    sid = start_run(guarded, headers=alice)
    assert request(f"{guarded.url}/sessions/{sid}/events?format=ndjson", headers=alice)[0] == 200
    assert request(f"{guarded.url}/sessions/{sid}/events?access_token={TOKEN_A}")[0] == 200
    unknown = "run-" + "0" * 32
    for path in (f"/sessions/{{}}", f"/sessions/{{}}/events"):
        forbidden = request(guarded.url + path.format(sid), headers=bob)
        missing = request(guarded.url + path.format(unknown), headers=bob)
        assert forbidden[0] == missing[0] == 404
        assert json.loads(forbidden[2])["error"].replace(sid, "SID") == \
            json.loads(missing[2])["error"].replace(unknown, "SID")
    status, _, body = request(f"{guarded.url}/sessions/{sid}/cancel", method="POST", headers=bob)
    assert status == 404
    assert [r["sid"] for r in json.loads(request(f"{guarded.url}/runs", headers=alice)[2])["runs"]] == [sid]
    assert json.loads(request(f"{guarded.url}/runs", headers=bob)[2])["runs"] == []
    # sessions not started over HTTP are not readable with tokens (share_store=False)
    with lazystream.session("written-here"):
        lazystream.FileSystemQueue().enqueue("private")
    lazystream.queue.backend().sync()
    assert request(f"{guarded.url}/sessions/written-here", headers=alice)[0] == 404


@pytest.mark.parametrize("sid, fragment", [("bad%00sid", "'bad\\x00sid' cannot be used"),
                                           ("a" * 300, "at most 256 characters")])
def test_sids_that_cannot_be_stored_exactly_are_refused_naming_them(app_server, sid, fragment):
    for path in (f"/sessions/{sid}", f"/sessions/{sid}/events", f"/sessions/{sid}/cancel"):
        status, _, body = request(app_server.url + path, method="POST" if path.endswith("cancel") else "GET")
        assert status == 400, path
        error = json.loads(body)
        assert error["parameter"] == "sid"
        assert fragment in error["error"]


def test_cors_headers_only_for_configured_origins(fresh_home):
    preflight = {"Origin": "http://ui.example", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization,content-type"}
    with SessionServer(cors_origins=["http://ui.example"]) as server:
        status, headers, _ = request(f"{server.url}/runs", method="OPTIONS", headers=preflight)
        assert (status, headers["access-control-allow-origin"]) == (200, "http://ui.example")
        assert "authorization" in headers["access-control-allow-headers"].lower()
        _, headers, _ = request(f"{server.url}/runs", headers={"Origin": "http://evil.example"})
        assert "access-control-allow-origin" not in headers
    with SessionServer() as server:
        _, headers, _ = request(f"{server.url}/runs", headers={"Origin": "http://ui.example"})
        assert "access-control-allow-origin" not in headers


def test_an_unknown_session_is_told_apart_within_pending_seconds(fresh_home):
    with SessionServer(pending=0.2) as server:
        status, _, body = request(f"{server.url}/sessions/never-written/events")
        assert status == 404
        assert json.loads(body)["parameter"] == "sid"


def test_a_session_that_starts_while_a_reader_waits_is_streamed(fresh_home):
    with SessionServer(pending=WAIT) as server:
        def produce():
            with lazystream.session("late"):
                lazystream.FileSystemQueue().enqueue("here")
        reader = threading.Thread(target=produce)
        response = {}

        def read():
            response["answer"] = request(f"{server.url}/sessions/late/events?format=ndjson")
        consumer = threading.Thread(target=read)
        consumer.start()
        reader.start()
        reader.join(WAIT)
        consumer.join(WAIT)
        status, _, body = response["answer"]
        assert status == 200
        assert [json.loads(line)["data"] for line in body.decode().splitlines()] == ["here", {"status": "ok"}]


def test_chat_app_mounts_the_edge_next_to_its_own_routes(weather_engine, fresh_home):
    import openai
    import chat_app
    app = chat_app.build_app(make_agent(weather_engine.base_url))
    with SessionServer(app=app) as server:
        assert json.loads(request(f"{server.url}/healthz")[2]) == {"status": "ok"}
        status, headers, page = request(f"{server.url}/")
        assert status == 200 and b"lazystream viewer" in page
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
        reply = client.chat.completions.create(model="weather", messages=[{"role": "user", "content": QUERY}])
        assert reply.choices[0].message.content == ANSWER
        assert server.active_streams == 0
