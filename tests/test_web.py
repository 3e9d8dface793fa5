"""lazystream.web: sessions' events over HTTP as live, resumable Server-Sent Events."""
from __future__ import annotations

import concurrent.futures
import http.client
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import urllib.error
import urllib.request
from urllib.parse import quote

import pytest

import lazystream
from lazystream.queue import ProducerGone, emit, read_session
from lazystream.web import SessionServer, follow_session, serve

WAIT = 10   # seconds any one wait may take before the test fails instead of hanging


@pytest.fixture
def server(fresh_home):
    with SessionServer() as srv:
        yield srv


@pytest.fixture
def any_server(backend_kind):
    with SessionServer() as srv:
        yield srv


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=WAIT) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def _blocks(body: str) -> list[str]:
    assert body.endswith("\n\n"), body[-200:]
    return body[:-2].split("\n\n")


def _wire(events) -> list[str]:
    return [f"id: {e.seq}\nevent: {e.kind}\ndata: {json.dumps(e.to_dict(), ensure_ascii=False)}" for e in events]


def _write_demo_session(sid: str) -> list:
    with lazystream.session(sid):
        emit("status", "searching")
        q = lazystream.FileSystemQueue()
        for token in ["你好", "line\nbreak", "!"]:
            q.enqueue(token)
        emit("tool_call", {"id": "c1", "name": "search", "arguments": {"q": "x"}})
        lazystream.FileSystemQueue.get_instance("lazy_trace").enqueue("trace text")
    return read_session(sid)


def _run_child(code: str, home) -> subprocess.CompletedProcess:
    env = dict(os.environ, LAZYSTREAM_HOME=str(home), LAZYSTREAM_QUEUE="sqlite")
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, timeout=60,
                          capture_output=True, text=True)


# --- the stream ---------------------------------------------------------------------------

def test_each_event_is_one_sse_message_then_done(any_server):
    events = _write_demo_session("demo")
    assert [(e.kind, e.data) for e in events] == [
        ("status", "searching"), ("text", "你好"), ("text", "line\nbreak"), ("text", "!"),
        ("tool_call", {"id": "c1", "name": "search", "arguments": {"q": "x"}}),
        ("trace", "trace text"), ("end", {"status": "ok"})]
    status, body = _get(f"{any_server.url}/sessions/demo/events")
    assert status == 200
    assert _blocks(body) == _wire(events) + ["data: [DONE]"]


def test_follow_session_yields_the_exact_events(any_server):
    events = _write_demo_session("demo")
    assert list(follow_session(any_server.url, "demo")) == events


def test_last_event_id_resumes_with_exactly_the_rest(server):
    events = _write_demo_session("demo")
    status, body = _get(f"{server.url}/sessions/demo/events", {"Last-Event-ID": str(events[1].seq)})
    assert status == 200
    assert _blocks(body) == _wire(events[2:]) + ["data: [DONE]"]
    assert list(follow_session(server.url, "demo", after=events[1].seq)) == events[2:]


def test_the_larger_of_after_and_last_event_id_wins(server):
    events = _write_demo_session("demo")
    _, body = _get(f"{server.url}/sessions/demo/events?after={events[3].seq}",
                   {"Last-Event-ID": str(events[1].seq)})
    assert _blocks(body) == _wire(events[4:]) + ["data: [DONE]"]
    _, body = _get(f"{server.url}/sessions/demo/events?after={events[1].seq}",
                   {"Last-Event-ID": str(events[3].seq)})
    assert _blocks(body) == _wire(events[4:]) + ["data: [DONE]"]


def test_an_ended_session_with_nothing_after_the_cursor_answers_204(server):
    events = _write_demo_session("demo")
    assert _get(f"{server.url}/sessions/demo/events?after={events[-1].seq}") == (204, "")
    assert list(follow_session(server.url, "demo", after=events[-1].seq)) == []


def test_queues_keeps_only_those_queues_and_the_end(server):
    events = _write_demo_session("demo")
    _, body = _get(f"{server.url}/sessions/demo/events?queues=lazy_stream,lazy_trace")
    kept = [e for e in events if e.queue in ("lazy_stream", "lazy_trace") or e.kind == "end"]
    assert [e.kind for e in kept] == ["text", "text", "text", "trace", "end"]
    assert _blocks(body) == _wire(kept) + ["data: [DONE]"]
    assert list(follow_session(server.url, "demo", queues=("lazy_trace",))) == [events[5], events[6]]


def test_the_sid_in_the_path_is_url_decoded(server):
    events = _write_demo_session("user 7/req?1#é")
    _, body = _get(f"{server.url}/sessions/{quote('user 7/req?1#é', safe='')}/events")
    assert _blocks(body) == _wire(events) + ["data: [DONE]"]
    assert list(follow_session(server.url, "user 7/req?1#é")) == events


def test_events_arrive_while_the_session_is_still_running(server):
    first_seen = threading.Event()

    def produce():
        with lazystream.session("live"):
            lazystream.FileSystemQueue().enqueue("early")
            # Not written until the client has the first token: only a live stream passes.
            if not first_seen.wait(WAIT):
                raise AssertionError("the client did not receive 'early' before the session ended")
            lazystream.FileSystemQueue().enqueue("late")

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        producer = pool.submit(produce)
        got = []
        for event in follow_session(server.url, "live", read_timeout=WAIT):
            got.append((event.kind, event.data))
            if event.data == "early":
                first_seen.set()
        producer.result()
    assert got == [("text", "early"), ("text", "late"), ("end", {"status": "ok"})]


def test_a_reader_that_connects_before_the_producer_starts_gets_everything(server):
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        reader = pool.submit(lambda: [(e.kind, e.data) for e in follow_session(server.url, "later",
                                                                               read_timeout=WAIT)])
        with lazystream.session("later"):
            emit("status", "started")
            lazystream.FileSystemQueue().enqueue("tok")
        assert reader.result(WAIT) == [("status", "started"), ("text", "tok"), ("end", {"status": "ok"})]


def test_an_idle_stream_gets_keepalive_comments(fresh_home):
    seen_keepalive = threading.Event()

    def produce():
        with lazystream.session("idle"):
            lazystream.FileSystemQueue().enqueue("before")
            if not seen_keepalive.wait(WAIT):
                raise AssertionError("no keepalive comment reached the client")
            lazystream.FileSystemQueue().enqueue("after")

    with SessionServer(keepalive=0.05) as srv, concurrent.futures.ThreadPoolExecutor(1) as pool:
        producer = pool.submit(produce)
        conn = http.client.HTTPConnection(srv.host, srv.port, timeout=WAIT)
        conn.request("GET", "/sessions/idle/events")
        response = conn.getresponse()
        assert response.status == 200
        assert response.getheader("Content-Type") == "text/event-stream; charset=utf-8"
        lines = []
        while (line := response.readline()) != b"":
            lines.append(line.decode().rstrip("\n"))
            if line == b": keepalive\n":
                seen_keepalive.set()
        conn.close()
        producer.result()
    data = [json.loads(line[6:])["data"] for line in lines if line.startswith("data: {")]
    assert data == ["before", "after", {"status": "ok"}]
    assert lines[-2:] == ["data: [DONE]", ""]
    # the keepalive came between the two tokens, while the session was idle
    assert lines.index(": keepalive") < next(i for i, l in enumerate(lines) if '"after"' in l)


def test_an_idle_timeout_ends_the_stream_with_an_error_message(server):
    lazystream.FileSystemQueue().enqueue("first", sid="silent")   # the session exists, then falls silent
    lazystream.queue.backend().sync()
    status, body = _get(f"{server.url}/sessions/silent/events?timeout=0.1")
    assert status == 200
    first, block = _blocks(body)
    assert '"data": "first"' in first
    head, data = block.split("\n")
    assert head == "event: error"
    assert json.loads(data[len("data: "):]) == {
        "type": "TimeoutError", "message": "no event in session 'silent' for 0.1 s (timeout=0.1)"}
    with pytest.raises(TimeoutError, match="silent"):
        list(follow_session(server.url, "silent", after=1, timeout=0.1))


# --- producers in other processes ------------------------------------------------------------

def test_a_producer_in_another_process_streams_through_the_server(server, fresh_home):
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        reader = pool.submit(lambda: [e.data for e in follow_session(server.url, "xproc", read_timeout=WAIT)])
        proc = _run_child("""
            import lazystream
            with lazystream.session("xproc"):
                for i in range(200):
                    lazystream.FileSystemQueue().enqueue(f"tok{i}")
        """, fresh_home)
        assert proc.returncode == 0, proc.stderr
        assert reader.result(WAIT) == [f"tok{i}" for i in range(200)] + [{"status": "ok"}]


def test_a_producer_process_that_died_ends_the_stream_with_an_error(server, fresh_home):
    proc = _run_child("""
        import os, lazystream
        from lazystream.queue import backend
        lazystream.FileSystemQueue().enqueue("before the crash", sid="dies")
        backend().sync()
        os._exit(1)
    """, fresh_home)
    assert proc.returncode == 1
    status, body = _get(f"{server.url}/sessions/dies/events")
    assert status == 200
    token, error = _blocks(body)
    assert token == _wire(read_session("dies"))[0]
    head, data = error.split("\n")
    assert head == "event: error"
    assert json.loads(data[len("data: "):]) == {
        "type": "ProducerGone",
        "message": f"the process (pid {_pid_of('dies')}) writing session 'dies' exited without ending it"}
    got = []
    with pytest.raises(ProducerGone, match="'dies' exited without ending it"):
        for event in follow_session(server.url, "dies"):
            got.append(event.data)
    assert got == ["before the crash"]


def _pid_of(sid: str) -> int:
    return lazystream.queue.backend().session_info(sid)["pid"]


# --- many clients, disconnects, drops, restarts ----------------------------------------------

def test_twenty_concurrent_clients_each_get_only_their_own_session(server):
    n, tokens = 20, 25
    start = threading.Barrier(n)

    def produce(i):
        start.wait(WAIT)   # every producer writes at the same time, interleaving in the store
        with lazystream.session(f"client-{i}"):
            for k in range(tokens):
                lazystream.FileSystemQueue().enqueue(f"{i}:{k}")

    def read(i):
        return [(e.sid, e.data) for e in follow_session(server.url, f"client-{i}", read_timeout=WAIT)]

    with concurrent.futures.ThreadPoolExecutor(2 * n) as pool:
        readers = [pool.submit(read, i) for i in range(n)]
        producers = [pool.submit(produce, i) for i in range(n)]
        for p in producers:
            p.result(WAIT)
        results = [r.result(WAIT) for r in readers]
    for i, got in enumerate(results):
        sid = f"client-{i}"
        assert got == [(sid, f"{i}:{k}") for k in range(tokens)] + [(sid, {"status": "ok"})]
    assert server.wait_idle(WAIT)


def test_a_client_that_disconnects_frees_its_stream(server):
    finish = threading.Event()

    def produce():
        with lazystream.session("left"):
            lazystream.FileSystemQueue().enqueue("one")
            finish.wait(3 * WAIT)   # outlasts wait_idle below: the session stays open meanwhile

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        producer = pool.submit(produce)
        stream = follow_session(server.url, "left", read_timeout=WAIT)
        assert next(stream).data == "one"
        assert server.active_streams == 1
        stream.close()   # the client hangs up while the session is still open
        try:
            assert server.wait_idle(WAIT), "the server kept streaming to a client that had left"
        finally:
            finish.set()
            producer.result()


class _CuttingProxy:
    """A TCP relay to ``upstream``; it cuts its first connection in the middle of the third message."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream, self.requests = upstream, []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.requests.append("")
            threading.Thread(target=self._relay, args=(client, len(self.requests) - 1), daemon=True).start()

    def _relay(self, client: socket.socket, index: int) -> None:
        with client, socket.create_connection(self.upstream) as up:
            request = b""
            while b"\r\n\r\n" not in request:
                request += client.recv(65536)
            self.requests[index] = request.decode()
            up.sendall(request)
            seen = b""
            while chunk := up.recv(65536):
                if index > 0:
                    client.sendall(chunk)
                    continue
                seen += chunk
                second_end = seen.find(b"\n\n", seen.find(b"\n\n") + 2)
                if second_end >= 0 and seen.find(b"\n\n", second_end + 2) >= 0:
                    client.sendall(seen[:second_end + 2 + 12])   # two whole messages, 12 bytes of the third
                    return

    def close(self) -> None:
        self.listener.close()


def test_follow_session_resumes_after_a_connection_cut_mid_message(server):
    events = _write_demo_session("demo")
    proxy = _CuttingProxy((server.host, server.port))
    try:
        assert list(follow_session(proxy.url, "demo", read_timeout=WAIT)) == events
    finally:
        proxy.close()
    assert len(proxy.requests) == 2
    assert "last-event-id: 0\r\n" in proxy.requests[0].lower()
    assert f"last-event-id: {events[1].seq}\r\n" in proxy.requests[1].lower()


def test_follow_session_resumes_across_a_server_restart(fresh_home):
    first = SessionServer()
    first.start()
    port, got_first, restarted = first.port, threading.Event(), threading.Event()

    def produce():
        with lazystream.session("restart"):
            lazystream.FileSystemQueue().enqueue("before")
            if not restarted.wait(WAIT):
                raise AssertionError("the server was not restarted")
            lazystream.FileSystemQueue().enqueue("after")

    def read():
        out = []
        for event in follow_session(first.url, "restart", read_timeout=WAIT):
            out.append(event.data)
            got_first.set()
        return out

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        producer, reader = pool.submit(produce), pool.submit(read)
        try:
            assert got_first.wait(WAIT)
        finally:
            first.close()      # ends the open stream; the client retries with Last-Event-ID
        with SessionServer(port=port):
            restarted.set()
            producer.result(WAIT)
            assert reader.result(WAIT) == ["before", "after", {"status": "ok"}]


# --- summary and errors -----------------------------------------------------------------------

def test_summary_of_an_ended_a_failed_and_a_running_session(server):
    events = _write_demo_session("demo")
    with pytest.raises(KeyError):
        with lazystream.session("failed"):
            lazystream.FileSystemQueue().enqueue("x")
            raise KeyError("boom")
    status, body = _get(f"{server.url}/sessions/demo")
    assert (status, json.loads(body)) == (200, {"sid": "demo", "events": 7, "last_seq": events[-1].seq,
                                                "ended": True, "status": "ok"})
    assert json.loads(_get(f"{server.url}/sessions/failed")[1])["status"] == "error"
    lazystream.FileSystemQueue().enqueue("tok", sid="running")
    last = read_session("running")[-1].seq
    assert json.loads(_get(f"{server.url}/sessions/running")[1]) == {
        "sid": "running", "events": 1, "last_seq": last, "ended": False, "status": "running"}


@pytest.mark.parametrize("query, headers, parameter", [
    ("after=abc", {}, "after"),
    ("after=-1", {}, "after"),
    ("after=1.5", {}, "after"),
    ("", {"Last-Event-ID": "xyz"}, "Last-Event-ID"),
    ("timeout=soon", {}, "timeout"),
    ("timeout=-1", {}, "timeout"),
    ("timeout=inf", {}, "timeout"),
    ("queues=lazy_stream,,lazy_trace", {}, "queues"),
    ("aftr=3", {}, "aftr"),
    ("after=1&after=2", {}, "after"),
])
def test_bad_parameters_answer_400_naming_the_parameter(server, query, headers, parameter):
    status, body = _get(f"{server.url}/sessions/demo/events?{query}", headers)
    assert status == 400
    error = json.loads(body)
    assert error["parameter"] == parameter
    assert parameter in error["error"]


def test_the_400_message_says_how_to_fix_it(server):
    status, body = _get(f"{server.url}/sessions/demo/events?after=abc")
    assert json.loads(body) == {"parameter": "after", "error": (
        "after='abc' is not a sequence number; use after=<seq> with a non-negative integer, "
        "the id of the last event you received (0: from the start)")}
    with pytest.raises(ValueError, match="answered 400: timeout='-1.0' is not a number"):
        list(follow_session(server.url, "demo", timeout=-1))


@pytest.mark.parametrize("path", ["/session/demo/events", "/nothing/here"])
def test_unknown_paths_answer_404_naming_the_routes(server, path):
    status, body = _get(server.url + path)
    assert status == 404
    assert "GET /sessions/{sid}/events" in json.loads(body)["error"]


def test_an_unknown_session_summary_answers_404(server):
    status, body = _get(f"{server.url}/sessions/never-written")
    assert status == 404
    assert json.loads(body) == {"parameter": "sid", "error": (
        "no session 'never-written' that you may read here (unknown, pruned, or not yours)")}


# --- construction -----------------------------------------------------------------------------

def test_serve_yields_the_base_url_on_localhost(fresh_home):
    events = _write_demo_session("demo")
    with serve() as url:
        assert url.startswith("http://127.0.0.1:")
        assert list(follow_session(url, "demo")) == events


def test_a_port_in_use_raises_naming_the_address(server):
    with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{server.port}.*0 for a free one"):
        SessionServer(port=server.port)


@pytest.mark.parametrize("kwargs, match", [({"keepalive": 0}, "keepalive"), ({"port": -1}, "port"),
                                           ({"port": "80"}, "port")])
def test_bad_server_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SessionServer(**kwargs)


@pytest.mark.parametrize("args, match", [(("localhost:8000", "s"), "base_url"), (("http://x", ""), "sid"),
                                         (("http://x", "s", -1), "after")])
def test_bad_follow_session_arguments_raise(args, match):
    with pytest.raises(ValueError, match=match):
        next(follow_session(*args))
