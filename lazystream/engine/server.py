"""The scripted engine: a real OpenAI-compatible HTTP server whose replies come from a policy.

It is not a model. It serves ``POST /v1/chat/completions`` (streaming SSE with
``data: [DONE]`` and non-streaming), ``GET /v1/models`` and ``GET /health`` on 127.0.0.1,
writes tool calls in the exact OpenAI delta format, sends the usage chunk when
``stream_options.include_usage`` is set, and can pace, chunk, delay and break its replies.

    with Engine(["Hello there!"]) as base_url:          # "http://127.0.0.1:PORT/v1"
        client = openai.OpenAI(base_url=base_url, api_key="unused")
"""
from __future__ import annotations

import json
import re
import select
import socket
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from .faults import Faults
from .policy import (
    Deltas,
    EngineError,
    Policy,
    Reply,
    Request,
    ToolCall,
    Turn,
    as_policy,
    as_turn,
    content_text,
    tokenize,
)
from .rawtext import RawFormat, get_format, render

__all__ = ["Engine"]

_FLUSH_BYTES = 1 << 16
_TRUTHY = (True, "true", 1)


class Engine:
    """A scripted OpenAI-compatible chat server on a free local port.

    ``policy``: a callable ``policy(Request) -> reply``, a list of replies (a ``Script``),
    a single reply (always the same), or None (the demo policy: echoes the user, calls
    the offered tools for the places named in the question, then summarises the results).
    ``tokens_per_second``: pacing (None: as fast as possible); ``chunk_size``: tokens per
    SSE chunk; ``ttft``: seconds before the first token; ``faults``: a ``Faults``;
    ``tool_call_format``: ``"internlm2"``/``"qwen"`` to write tool calls as raw text in the
    content instead of OpenAI ``tool_calls``; ``api_key``: if set, required as Bearer token;
    ``send_usage=False``: never send the usage chunk (as some servers do not).

    Use as ``with Engine(...) as base_url:`` or ``start()`` / ``stop()``.
    """

    def __init__(self, policy: Policy | list[Reply] | Reply | None = None, *,
                 tokens_per_second: float | None = None, chunk_size: int = 1,
                 ttft: float = 0.0, faults: Faults | None = None,
                 tool_call_format: str | None = None, model: str = "lazystream-engine",
                 host: str = "127.0.0.1", port: int = 0, api_key: str | None = None,
                 send_usage: bool = True) -> None:
        if tokens_per_second is not None and (
                not isinstance(tokens_per_second, (int, float)) or tokens_per_second <= 0):
            raise ValueError(f"Engine: tokens_per_second must be > 0 or None (unpaced), "
                             f"got {tokens_per_second!r}")
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise ValueError(f"Engine: chunk_size must be an int >= 1, got {chunk_size!r}")
        if not isinstance(ttft, (int, float)) or ttft < 0:
            raise ValueError(f"Engine: ttft must be seconds >= 0, got {ttft!r}")
        if faults is not None and not isinstance(faults, Faults):
            raise ValueError(f"Engine: faults must be a Faults(...), got {faults!r}")
        if policy is None:
            from .demo import demo_policy
            policy = demo_policy
        self.policy: Policy = as_policy(policy)
        self.tokens_per_second = tokens_per_second
        self.chunk_size = chunk_size
        self.ttft = float(ttft)
        self.faults = faults or Faults()
        self.raw_format: RawFormat | None = (get_format(tool_call_format)
                                             if tool_call_format is not None else None)
        self.model = model
        self.host = host
        self.port = port
        self._requested_port = port
        self.api_key = api_key
        self.send_usage = send_usage
        self._requests: list[Request] = []
        self._errors: list[BaseException] = []
        self._disconnects = 0
        self._disconnected = threading.Condition()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> str:
        """Start serving in a background thread; return the base URL (``…/v1``).

        Raises ``RuntimeError`` if already started, ``OSError`` if the port is taken.
        """
        if self._server is not None:
            raise RuntimeError(f"Engine already serving at {self.base_url}")
        self._stopping.clear()
        server = _Server((self.host, self._requested_port), _Handler)
        server.engine = self
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"lazystream-engine:{self.port}", daemon=True)
        self._thread.start()
        return self.base_url

    def stop(self) -> None:
        """Stop serving and close the port; replies in progress are cut. Idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        server.close_connections()
        if self._thread is not None:
            self._thread.join()

    def serve_forever(self) -> None:
        """Block until ``KeyboardInterrupt``, then stop; starts the engine if needed (the CLI)."""
        if self._server is None:
            self.start()
        try:
            while self._thread is not None and self._thread.is_alive():
                self._thread.join(0.5)
        finally:
            self.stop()

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``. Raises ``RuntimeError`` before ``start()``."""
        if self._server is None:
            raise RuntimeError("Engine is not started; use `with Engine(...) as base_url:` "
                               "or call start()")
        return f"http://{self.host}:{self.port}/v1"

    @property
    def requests(self) -> list[Request]:
        """Every chat request received so far, in arrival order (a copy)."""
        with self._lock:
            return list(self._requests)

    @property
    def disconnects(self) -> int:
        """How many streaming replies the client hung up on before their end."""
        with self._disconnected:
            return self._disconnects

    def wait_disconnects(self, n: int = 1, timeout: float | None = None) -> bool:
        """Block until at least ``n`` replies were hung up on; False if ``timeout`` passed."""
        with self._disconnected:
            return self._disconnected.wait_for(lambda: self._disconnects >= n, timeout)

    def _client_left(self) -> None:
        with self._disconnected:
            self._disconnects += 1
            self._disconnected.notify_all()

    def _pause(self, h: _Handler, seconds: float) -> bool:
        """Wait ``seconds`` (pacing, a stall) watching the client; True if it hung up or the
        engine stops (the reply is then aborted)."""
        deadline = time.monotonic() + seconds
        sock = h.connection
        while True:
            remaining = deadline - time.monotonic()
            if self._stopping.is_set():
                return True
            if remaining <= 0:
                return False
            readable, _, _ = select.select([sock], [], [], min(remaining, 0.05))
            if readable:
                try:
                    gone = sock.recv(1, socket.MSG_PEEK) == b""
                except OSError:
                    gone = True
                if gone:
                    self._client_left()
                    return True
                # the client sent data mid-reply (not a hang-up): pause without watching
                return self._stopping.wait(max(0.0, deadline - time.monotonic()))

    @property
    def errors(self) -> list[BaseException]:
        """Exceptions raised by the policy or the engine itself (each also answered 500)."""
        with self._lock:
            return list(self._errors)

    def __repr__(self) -> str:
        state = self.base_url if self._server is not None else "stopped"
        return f"Engine({state}, policy={getattr(self.policy, '__name__', self.policy)!r})"

    # -- request handling ----------------------------------------------------------------
    def _handle_chat(self, h: _Handler) -> None:
        if self.api_key is not None and h.headers.get("Authorization") != f"Bearer {self.api_key}":
            return h.send_error_json(401, "Incorrect API key provided", "invalid_api_key")
        try:
            body = json.loads(h.rfile.read(int(h.headers.get("Content-Length") or 0)) or b"null")
        except ValueError as e:
            return h.send_error_json(400, f"request body is not JSON: {e}", "invalid_request_error")
        problem = _check_body(body)
        if problem:
            return h.send_error_json(400, problem, "invalid_request_error")
        with self._lock:
            request = Request(messages=body["messages"], tools=body.get("tools"),
                              model=str(body.get("model", "")), stream=body.get("stream") in _TRUTHY,
                              params=body, number=len(self._requests))
            self._requests.append(request)
        faults = self.faults
        if request.number < faults.drop_first:
            return h.abort()
        if request.number < faults.fail_first:
            kind = "rate_limit_exceeded" if faults.status == 429 else "server_error"
            return h.send_error_json(faults.status, f"injected fault: request {request.number + 1} "
                                     f"of the first {faults.fail_first} fails", kind,
                                     retry_after=faults.retry_after)
        try:
            reply = as_turn(self.policy(request))
        except EngineError as e:
            return h.send_error_json(e.status, e.message, e.type, retry_after=e.retry_after)
        except Exception as e:  # noqa: BLE001 - a policy bug becomes a 500 the client sees
            with self._lock:
                self._errors.append(e)
            return h.send_error_json(500, f"engine policy raised {type(e).__name__}: {e}",
                                     "policy_error")
        if faults.stall and faults.stall_after == 0 and self._pause(h, faults.stall):
            return h.abort()
        if request.stream:
            self._stream(h, request, reply)
        else:
            self._complete(h, request, reply)

    def _pieces(self, reply: Turn, calls: list[ToolCall]) -> list[tuple[str, str, int]]:
        """The reply as (kind, text, call index) tokens: r(easoning), c(ontent), n(ame), a(rgs)."""
        pieces = [("r", t, 0) for t in tokenize(reply.reasoning_content or "")]
        if self.raw_format is not None:
            text = (reply.content or "") + "".join(
                render(self.raw_format, c.name, self._args(c)) for c in calls)
            tokens = (list(reply.tokens) + _raw_tokens(self.raw_format, text[len(reply.content or ""):])
                      if reply.tokens is not None else _raw_tokens(self.raw_format, text))
            return pieces + [("c", t, 0) for t in tokens]
        pieces += [("c", t, 0) for t in reply.content_tokens()]
        for i, call in enumerate(calls):
            pieces.append(("n", call.name, i))
            pieces += [("a", t, i) for t in tokenize(self._args(call))]
        return pieces

    def _args(self, call: ToolCall) -> str:
        text = call.arguments_json
        return text[:-1] if self.faults.malformed_tool_json and text else text

    def _stream(self, h: _Handler, request: Request, reply: Turn | Deltas) -> None:
        faults = self.faults
        chunks: Iterable[tuple[dict[str, Any], int]]
        if isinstance(reply, Deltas):
            chunks = [(d, 1) for d in reply.items]
            finish = reply.finish_reason
        else:
            calls = [c.with_id() for c in reply.tool_calls]
            chunks = self._group(self._pieces(reply, calls), calls)
            finish = "tool_calls" if calls and self.raw_format is None else "stop"
        head = (f'data: {{"id":"chatcmpl-{uuid.uuid4().hex[:24]}","object":"chat.completion.chunk",'
                f'"created":{int(time.time())},"model":{json.dumps(request.model)},').encode()
        open_choice = head + b'"choices":[{"index":0,"delta":'
        tail = b',"logprobs":null,"finish_reason":null}]}\n\n'
        out = _ChunkedWriter(h)
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream; charset=utf-8")
        h.send_header("Cache-Control", "no-cache")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        out.add(open_choice + b'{"role":"assistant","content":""}' + tail)
        tps, ttft, stopping, dumps = self.tokens_per_second, self.ttft, self._stopping, json.dumps
        paced = tps is not None or ttft > 0
        t0 = time.perf_counter()
        sent = 0
        for delta, n in chunks:
            if faults.cut_after is not None and sent + n > faults.cut_after:
                out.flush()
                return h.abort()
            if paced:
                due = t0 + ttft + ((sent + n - 1) / tps if tps else 0.0)
                out.flush()
                delay = due - time.perf_counter()
                if delay > 0 and self._pause(h, delay):
                    return h.abort()
            if stopping.is_set():
                return h.abort()
            out.add(open_choice + dumps(delta, ensure_ascii=False).encode() + tail)
            if not sent:
                out.flush()  # the first token goes out at once, so time-to-first-token is honest
            sent += n
            if faults.stall and faults.stall_after == sent:
                out.flush()
                if self._pause(h, faults.stall):
                    return h.abort()
        if faults.cut_after is not None and sent >= faults.cut_after:
            out.flush()
            return h.abort()
        out.add(open_choice + b'{}' + f',"logprobs":null,"finish_reason":"{finish}"}}]}}\n\n'.encode())
        options = request.params.get("stream_options") or {}
        if self.send_usage and isinstance(options, dict) and options.get("include_usage") in _TRUTHY:
            usage = _usage(request, sent)
            out.add(head + b'"choices":[],"usage":' + json.dumps(usage).encode() + b"}\n\n")
        out.add(b"data: [DONE]\n\n")
        out.finish()

    def _group(self, pieces: list[tuple[str, str, int]],
               calls: list[ToolCall]) -> Iterator[tuple[dict[str, Any], int]]:
        """Yield chunk deltas of up to ``chunk_size`` tokens of one kind, with their size."""
        size = self.chunk_size
        stall_at = self.faults.stall_after if self.faults.stall else -1
        cut_at = self.faults.cut_after
        group: list[str] = []
        key: tuple[str, int] = ("", -1)
        for count, (kind, text, i) in enumerate(pieces):
            # Chunks never straddle a stall or cut point, so faults hit exactly token K.
            if group and ((kind, i) != key or len(group) >= size or count in (stall_at, cut_at)):
                yield _delta(key, "".join(group)), len(group)
                group.clear()
            if kind == "n":
                call = calls[i]
                yield {"tool_calls": [{"index": i, "id": call.id, "type": "function",
                                       "function": {"name": text, "arguments": ""}}]}, 1
                continue
            key = (kind, i)
            group.append(text)
        if group:
            yield _delta(key, "".join(group)), len(group)

    def _complete(self, h: _Handler, request: Request, reply: Turn | Deltas) -> None:
        if isinstance(reply, Deltas):
            return h.send_error_json(400, "a Deltas reply can only be streamed; send stream=true "
                                          "or return a Turn", "invalid_request_error")
        calls = [c.with_id() for c in reply.tool_calls]
        pieces = self._pieces(reply, calls)
        n = len(pieces)
        faults = self.faults
        if faults.cut_after is not None and faults.cut_after <= n:
            return h.abort()
        delay = self.ttft + ((n - 1) / self.tokens_per_second if self.tokens_per_second and n else 0.0)
        if faults.stall and faults.stall_after:
            delay += faults.stall
        if delay and self._stopping.wait(delay):
            return h.abort()
        message: dict[str, Any] = {"role": "assistant"}
        if self.raw_format is not None:
            message["content"] = "".join(t for k, t, _ in pieces if k == "c")
            calls = []
        else:
            message["content"] = reply.content
            if calls:
                message["tool_calls"] = [
                    {"id": c.id, "type": "function",
                     "function": {"name": c.name, "arguments": self._args(c)}} for c in calls]
        if reply.reasoning_content is not None:
            message["reasoning_content"] = reply.reasoning_content
        h.send_json(200, {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion",
            "created": int(time.time()), "model": request.model,
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": "tool_calls" if calls else "stop"}],
            "usage": _usage(request, n)})

    def _models(self) -> dict[str, Any]:
        return {"object": "list", "data": [{"id": self.model, "object": "model",
                                            "created": 0, "owned_by": "lazystream"}]}


def _delta(key: tuple[str, int], text: str) -> dict[str, Any]:
    kind, i = key
    if kind == "r":
        return {"reasoning_content": text}
    if kind == "c":
        return {"content": text}
    return {"tool_calls": [{"index": i, "function": {"arguments": text}}]}


def _check_body(body: Any) -> str | None:
    if not isinstance(body, dict):
        return f"request body must be a JSON object, got {type(body).__name__}"
    messages = body.get("messages")
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        return f"'messages' must be a list of message objects, got {messages!r}"
    tools = body.get("tools")
    if tools is not None and not isinstance(tools, list):
        return f"'tools' must be a list, got {tools!r}"
    return None


def _usage(request: Request, completion_tokens: int) -> dict[str, int]:
    prompt = sum(len(tokenize(content_text(m.get("content")))) for m in request.messages)
    return {"prompt_tokens": prompt, "completion_tokens": completion_tokens,
            "total_tokens": prompt + completion_tokens}


def _raw_tokens(fmt: RawFormat, text: str) -> list[str]:
    """Tokenise raw text, keeping each special token whole (as a real tokenizer does)."""
    specials = re.compile("(" + "|".join(re.escape(s) for s in (fmt.start, fmt.end)) + ")")
    tokens: list[str] = []
    for i, part in enumerate(specials.split(text)):
        if i % 2:
            tokens.append(part)
        elif part:
            tokens += tokenize(part)
    return tokens


class _ChunkedWriter:
    """HTTP/1.1 chunked body writer that batches SSE events into few syscalls."""

    def __init__(self, handler: _Handler) -> None:
        self._sock = handler.connection
        self._parts: list[bytes] = []
        self._size = 0

    def add(self, data: bytes) -> None:
        self._parts.append(data)
        self._size += len(data)
        if self._size >= _FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        if self._size:
            data = b"".join(self._parts)
            self._parts.clear()
            self._size = 0
            self._sock.sendall(b"%x\r\n%b\r\n" % (len(data), data))

    def finish(self) -> None:
        data = b"".join(self._parts)
        self._parts.clear()
        self._size = 0
        self._sock.sendall((b"%x\r\n%b\r\n" % (len(data), data) if data else b"") + b"0\r\n\r\n")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    engine: Engine

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def close_connections(self) -> None:
        """Close kept-alive client connections too, so a stopped engine answers nothing."""
        with self.connections_lock:
            connections, self.connections = self.connections, set()
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # the client closed it already

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (BrokenPipeError, ConnectionResetError)):
            self.engine._client_left()
            return  # the client went away (a timeout or a cut): normal for a server
        if exc is not None:
            with self.engine._lock:
                self.engine._errors.append(exc)
        traceback.print_exc()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "lazystream-engine/1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the engine is used in tests and benchmarks."""

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        super().finish()

    def do_GET(self) -> None:
        path = urlsplit(self.path).path.rstrip("/")
        if path in ("/v1/models", "/models"):
            self.send_json(200, self.server.engine._models())
        elif path in ("/health", "/v1/health", ""):
            self.send_json(200, {"status": "ok", "engine": "lazystream scripted engine"})
        else:
            self.send_error_json(404, f"no route GET {path}", "not_found")

    def do_POST(self) -> None:
        path = urlsplit(self.path).path.rstrip("/")
        if path in ("/v1/chat/completions", "/chat/completions"):
            self.server.engine._handle_chat(self)
        else:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_error_json(404, f"no route POST {path}; the engine serves "
                                      f"/v1/chat/completions and /v1/models", "not_found")

    def send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def send_error_json(self, status: int, message: str, type_: str, *,
                        retry_after: float | None = None) -> None:
        headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else None
        self.send_json(status, {"error": {"message": message, "type": type_, "param": None,
                                          "code": type_}}, headers)

    def abort(self) -> None:
        """Drop the connection mid-reply (a cut stream, a stall the client gave up on)."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed by the client
