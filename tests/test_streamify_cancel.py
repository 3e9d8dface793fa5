"""Leaving a streamify generator early cancels the run: the producer stops, the HTTP
stream to the model is closed, no further model call is made, and the program can be
called again at once — for ``break``/``close``, ``aclose`` and garbage collection."""
from __future__ import annotations

import asyncio
import gc
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lazystream.engine import Engine
from lazystream.programs import LM, Module, Predict, settings
from lazystream.programs import program_policy
from lazystream.streaming import StreamListener, streamify


class _EndlessModel(BaseHTTPRequestHandler):
    """An OpenAI-compatible model whose answer never ends; it records when the client hangs up."""

    protocol_version = "HTTP/1.1"
    server: "_Server"

    def log_message(self, *args):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        self.server.requests += 1

        def send(text):
            chunk = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "m",
                     "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()

        try:
            send("[[ ## answer ## ]]\n")
            while not self.server.closed.wait(0.02):   # one word every 20 ms, for ever
                send(" word")
        except (BrokenPipeError, ConnectionResetError):
            self.server.closed.set()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _EndlessModel)
        self.closed = threading.Event()
        self.requests = 0


@pytest.fixture
def endless():
    server = _Server()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server, LM("openai/m", api_base=f"http://127.0.0.1:{server.server_address[1]}/v1",
                     api_key="x", cache=False)
    server.closed.set()
    server.shutdown()
    server.server_close()


def _stream(async_streaming):
    return streamify(Predict("question->answer"), stream_listeners=[StreamListener("answer")],
                     async_streaming=async_streaming)


@pytest.mark.parametrize("how", ["close", "gc"])
def test_leaving_the_sync_generator_closes_the_model_stream(endless, how):
    server, lm = endless
    with settings.context(lm=lm):
        gen = _stream(False)(question="q")
        assert [next(gen).chunk for _ in range(3)] == ["word", " word", " word"]
        if how == "close":
            gen.close()
        else:
            del gen
            gc.collect()
        assert server.closed.wait(10), "the HTTP stream to the model stayed open"


@pytest.mark.parametrize("how", ["aclose", "gc"])
def test_leaving_the_async_generator_closes_the_model_stream(endless, how):
    server, lm = endless

    async def go():
        with settings.context(lm=lm):
            agen = _stream(True)(question="q")
            first = [(await agen.__anext__()).chunk for _ in range(3)]
            if how == "aclose":
                await agen.aclose()
            else:
                del agen
                gc.collect()
            return first

    assert asyncio.run(go()) == ["word", " word", " word"]
    assert server.closed.wait(10), "the HTTP stream to the model stayed open"


class _ThreeSteps(Module):
    def __init__(self, finished: threading.Event, ended: threading.Event):
        super().__init__()
        self.finished, self.ended = finished, ended
        self.predict1 = Predict("question->answer")
        self.predict2 = Predict("answer->simplified_answer")
        self.predict3 = Predict("simplified_answer->verdict")

    def forward(self, question):
        try:
            answer = self.predict1(question=question)
            simpler = self.predict2(answer=answer)
            out = self.predict3(simplified_answer=simpler)
            self.finished.set()
            return out
        finally:
            self.ended.set()


def test_a_run_left_early_makes_no_further_model_calls():
    """Breaking after the listened field ends stops the unlistened steps that follow."""
    finished, ended, second_call = threading.Event(), threading.Event(), threading.Event()

    def policy(request):
        if "simplified_answer" in json.dumps(request.messages):
            second_call.set()
        return program_policy(request)

    engine = Engine(policy, tokens_per_second=100)
    with engine as url:
        lm = LM("openai/m", api_base=url, cache=False)
        stream = streamify(_ThreeSteps(finished, ended), stream_listeners=[StreamListener("answer")],
                           async_streaming=False)
        with settings.context(lm=lm):
            gen = stream(question="why did a chicken cross the kitchen?")
            for chunk in gen:
                if chunk.is_last_chunk:
                    break
            # leave while the unlistened predict2 is with the model
            assert second_call.wait(20)
            gen.close()
            assert ended.wait(20), "the first run did not stop"
            asked = len(engine.requests)
            # callable again at once; its first chunk comes from a new predict1 call
            again = stream(question="again")
            assert next(again).signature_field_name == "answer"
            again.close()
        assert not finished.is_set()
        # the first run made predict1's and predict2's calls, never predict3's
        assert asked == 2
        assert all("verdict" not in json.dumps(r.messages) for r in engine.requests)
