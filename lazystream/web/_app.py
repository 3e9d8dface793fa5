"""``create_app``: the ASGI (Starlette) app of the web edge. Mount it, or run it with uvicorn.

Routes (docs/web.md has the full reference):

* ``GET /`` — the viewer page (``viewer/``, no build step).
* ``GET /api/modules`` — the served modules.
* ``POST /runs`` ``{"module", "input"}`` — start a run; ``201 {"sid", …}``. ``GET /runs`` — the
  runs this app started that the caller may see, newest first, with status.
* ``GET /sessions/{sid}`` — a summary; ``GET /sessions/{sid}/events`` — its events as SSE
  (``Accept: application/x-ndjson`` or ``?format=ndjson``: NDJSON), live, resumable with
  ``Last-Event-ID`` / ``?after=``, heartbeats, exactly one terminal message.
* ``POST /sessions/{sid}/cancel`` — cancel its run (a client disconnect never does, unless
  the app or request asks for ``cancel_on_disconnect``).
* ``GET /v1/models``, ``POST /v1/chat/completions`` — OpenAI Chat Completions.
* ``POST /api/chat`` — the Vercel AI SDK UI message stream v1 (``useChat``).
* ``POST /agui`` — AG-UI: ``RunAgentInput`` in, AG-UI events out.

Limits: request bodies over ``max_body`` bytes get 413; at ``max_streams`` open streams a
new one gets 503; a client that reads nothing for ``send_timeout`` s is dropped; what is
in flight to one client is bounded by the transport's write buffer, never by how far
behind it is (``_hub``).
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import math
import threading
import time
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from anyio import to_thread
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from ..events import Event
from ..queue import backend, read_session
from . import _sse
from ._access import Access, Unauthorized, check_sid
from ._hub import Hub
from ._runs import Runner, TooManyRuns, module_name
from ._stream import HEARTBEAT, StreamError, StreamRequest, session_stream
from .adapters.agui import AGUIProjector
from .adapters.openai_chat import OpenAIProjector, openai_completion
from .adapters.vercel import HEADERS as VERCEL_HEADERS
from .adapters.vercel import VercelProjector

__all__ = ["BadRequest", "create_app"]

VIEWER = Path(__file__).resolve().parent / "viewer"
_STREAM_PARAMS = ("after", "queues", "timeout", "format", "access_token")
_NDJSON = "application/x-ndjson"


class BadRequest(Exception):
    """A request parameter is wrong; the message names it and the fix."""

    def __init__(self, parameter: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.parameter, self.status = parameter, status


def _as_modules(modules: Any) -> dict[str, Any]:
    if modules is None:
        return {}
    if isinstance(modules, Mapping):
        return dict(modules)
    if callable(modules) and not isinstance(modules, (list, tuple)):
        modules = [modules]
    return {module_name(m): m for m in modules}


class _Edge:
    """The state behind the routes: modules, runs, access, limits, open streams."""

    def __init__(self, modules: Any, *, token: str | Iterable[str] | None, share_store: bool,
                 keepalive: float, max_body: int, max_streams: int, max_runs: int, send_timeout: float,
                 pending: float, cancel_on_disconnect: bool) -> None:
        for name, value in (("keepalive", keepalive), ("send_timeout", send_timeout), ("pending", pending)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0 or math.isinf(value):
                raise ValueError(f"create_app: {name} must be a finite number of seconds >= 0, got {value!r}")
        if not keepalive > 0:
            raise ValueError(f"create_app: keepalive must be > 0 seconds, got {keepalive!r}; e.g. 15")
        for name, value in (("max_body", max_body), ("max_streams", max_streams), ("max_runs", max_runs)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"create_app: {name} must be an int >= 1, got {value!r}")
        self.runner = Runner(_as_modules(modules), max_running=max_runs)
        self.access = Access(token, share_store=share_store)
        self.hub = Hub()
        self.keepalive, self.max_body, self.max_streams = float(keepalive), max_body, max_streams
        self.send_timeout, self.pending = float(send_timeout), float(pending)
        self.cancel_on_disconnect = cancel_on_disconnect
        self.streams = 0
        self.streams_changed = threading.Condition()
        self.closing = asyncio.Event()   # set by SessionServer.close(): end every stream
        self._closing_sets: set[asyncio.Event] = set()

    # --- access -------------------------------------------------------------------------
    def principal(self, request: Request) -> str:
        return self.access.principal(request.headers.get("authorization"), request.query_params.get("access_token"))

    def not_found(self, sid: str) -> BadRequest:
        # The same answer whether the session is unknown or someone else's: no oracle.
        return BadRequest("sid", f"no session {sid!r} that you may read here (unknown, pruned, or not yours)",
                          status=404)

    async def readable(self, request: Request, sid: str, *, wait: bool) -> str:
        """Return the caller's principal if it may read ``sid``; raise 404 otherwise.

        Without tokens (or with ``share_store``) a session not started here may be read
        once it exists; with ``wait`` a not-yet-started one is waited for up to
        ``pending`` seconds (a reader may connect before its producer).
        """
        principal = self.principal(request)
        check = _sid_param(sid)
        run = self.runner.get(check)
        if run is not None:
            if self.access.may_read(principal, run.owner):
                return principal
            raise self.not_found(sid)
        if not self.access.may_read(principal, None):
            raise self.not_found(sid)
        if await to_thread.run_sync(_exists, check):
            return principal
        if not wait or not self.pending:
            raise self.not_found(sid)
        # Wait for its first event through the session's shared reader: woken by the store,
        # one thread however many clients wait.
        deadline = time.monotonic() + self.pending
        watch = self.hub.subscribe(check, 0)
        try:
            while not watch.recent and not watch.finished:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise self.not_found(sid)
                await watch.changed(min(remaining, 1.0))
        finally:
            self.hub.unsubscribe(watch)
        return principal

    # --- streams --------------------------------------------------------------------------
    def stream_slot(self) -> None:
        if self.streams >= self.max_streams:
            raise BadRequest("streams", f"{self.streams} streams are open, the limit (max_streams) is "
                                        f"{self.max_streams}; retry later", status=503)


def _exists(sid: str) -> bool:
    info = backend().session_info(sid)
    if info is not None:
        return not info.get("pruned")   # a pruned session answers like an unknown one
    return bool(read_session(sid, 0, limit=1, timeout=_GLANCE))


def _sid_param(sid: str) -> str:
    try:
        return check_sid(sid, "the sid in the path")
    except ValueError as e:
        raise BadRequest("sid", str(e)) from None


def _json_error(request: Request, message: str, parameter: str, status: int,
                headers: dict[str, str] | None = None) -> JSONResponse:
    if request.url.path.startswith("/v1/") or "/v1/" in request.url.path:
        # The OpenAI API's error shape, so its SDK raises with our message.
        body: dict[str, Any] = {"error": {"message": message, "type": "invalid_request_error",
                                          "param": parameter, "code": None}}
    else:
        body = {"error": message, "parameter": parameter}
    return JSONResponse(body, status_code=status, headers=headers)


def _handles_errors(route: Callable[[Request], Any]) -> Callable[[Request], Any]:
    async def wrapped(request: Request) -> Response:
        try:
            return await route(request)
        except BadRequest as e:
            return _json_error(request, str(e), e.parameter, e.status,
                               {"Retry-After": "1"} if e.status == 503 else None)
        except Unauthorized as e:
            return _json_error(request, str(e), "Authorization", 401,
                               {"WWW-Authenticate": 'Bearer realm="lazystream"'})
    wrapped.__name__ = route.__name__
    return wrapped


async def _body(request: Request, edge: _Edge) -> Any:
    """Read a JSON body of at most ``max_body`` bytes; 413/400 naming the problem otherwise."""
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > edge.max_body):
        raise BadRequest("body", f"the request body ({length} bytes) is over the limit of {edge.max_body} bytes "
                                 "(max_body); send less", status=413)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > edge.max_body:
            raise BadRequest("body", f"the request body is over the limit of {edge.max_body} bytes (max_body); "
                                     "send less", status=413)
        chunks.append(chunk)
    try:
        return json.loads(b"".join(chunks) or b"null")
    except ValueError as e:
        raise BadRequest("body", f"the request body is not JSON ({e}); send a JSON object with "
                                 "Content-Type: application/json") from None


def _params(request: Request, known: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in request.query_params.multi_items():
        if name not in known:
            hint = f"known parameters: {', '.join(known)}" if known else "this route takes no parameters"
            raise BadRequest(name, f"unknown parameter {name!r}; {hint}")
        if name in out:
            raise BadRequest(name, f"parameter {name!r} given more than once; give it once")
        out[name] = value
    return out


def _cursor(name: str, raw: str, usage: str) -> int:
    if raw.isdigit() and raw.isascii():
        return int(raw)
    raise BadRequest(name, f"{name}={raw!r} is not a sequence number; use {usage} with a non-negative "
                           "integer, the id of the last event you received (0: from the start)")


def _stream_request(sid: str, params: dict[str, str], last_event_id: str | None) -> StreamRequest:
    after = _cursor("after", params.get("after", "0"), "after=<seq>")
    if last_event_id is not None and last_event_id.strip():
        after = max(after, _cursor("Last-Event-ID", last_event_id.strip(), "the header Last-Event-ID: <seq>"))
    queues = None
    if "queues" in params:
        queues = tuple(q.strip() for q in params["queues"].split(","))
        if not all(queues):
            raise BadRequest("queues", f"queues={params['queues']!r} has an empty name; use a comma-separated "
                                       "list of queue names, e.g. queues=lazy_stream,lazy_trace")
    timeout = None
    if "timeout" in params:
        raw = params["timeout"]
        try:
            timeout = float(raw)
        except ValueError:
            timeout = -1.0
        if not (0 <= timeout < math.inf):
            raise BadRequest("timeout", f"timeout={raw!r} is not a number of seconds >= 0; e.g. timeout=30, "
                                        "or leave it out to wait for ever")
    return StreamRequest(sid, after, queues, timeout)


class _StreamResponse:
    """A streamed response with a write timeout, a disconnect signal and a stream slot."""

    def __init__(self, edge: _Edge, body: Callable[[asyncio.Event], AsyncGenerator[bytes, None]], media_type: str,
                 headers: Mapping[str, str] | None = None, on_disconnect: Callable[[], object] | None = None) -> None:
        edge.stream_slot()
        with edge.streams_changed:
            edge.streams += 1
        self.edge, self.body, self.media_type = edge, body, media_type
        self.headers = dict(headers or {})
        self.on_disconnect = on_disconnect

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        edge = self.edge
        stop = asyncio.Event()
        edge._closing_sets.add(stop)
        if edge.closing.is_set():
            stop.set()
        gone = False

        async def watch_disconnect() -> None:
            nonlocal gone
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    gone = True
                    stop.set()
                    return

        watcher = asyncio.ensure_future(watch_disconnect())
        body = self.body(stop)
        try:
            headers = [(b"content-type", self.media_type.encode()), (b"cache-control", b"no-cache"),
                       (b"x-accel-buffering", b"no")]
            headers += [(k.lower().encode(), v.encode()) for k, v in self.headers.items()]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            async for chunk in body:
                if gone:
                    break
                # A client that reads nothing for send_timeout s is dropped (its buffer is bounded).
                await _send_within(send, {"type": "http.response.body", "body": chunk, "more_body": True},
                                   edge.send_timeout)
            if not gone:
                await _send_within(send, {"type": "http.response.body", "body": b"", "more_body": False},
                                   edge.send_timeout)
        except (TimeoutError, asyncio.TimeoutError, OSError):
            gone = True
        finally:
            watcher.cancel()
            await body.aclose()
            edge._closing_sets.discard(stop)
            with edge.streams_changed:
                edge.streams -= 1
                edge.streams_changed.notify_all()
            if gone and self.on_disconnect is not None:
                self.on_disconnect()


async def _send_within(send: Callable[[Any], Any], message: dict[str, Any], timeout: float) -> None:
    """``await send(message)``, raising ``TimeoutError`` after ``timeout`` s (the client reads
    nothing). Cheaper than ``asyncio.wait_for``, which makes a task per call."""
    task = asyncio.current_task()
    assert task is not None   # awaited from a task
    expired = False

    def expire() -> None:
        nonlocal expired
        expired = True
        task.cancel()
    handle = asyncio.get_running_loop().call_later(timeout, expire)
    try:
        await send(message)
    except asyncio.CancelledError:
        if expired:
            raise TimeoutError(f"the client read nothing for {timeout:g} s") from None
        raise
    finally:
        handle.cancel()


def _encode_sse(item: list[Event] | StreamError | Any) -> bytes:
    if isinstance(item, list):
        watch = getattr(item, "watch", None)
        if watch is None:
            return b"".join(_sse.encode_event(e) for e in item)
        return b"".join(watch.encoded(e, _sse.encode_event) for e in item)
    if isinstance(item, StreamError):
        return _sse.encode_error(item.type, item.message)
    return _sse.KEEPALIVE if item is HEARTBEAT else _sse.DONE


def _encode_ndjson(item: list[Event] | StreamError | Any) -> bytes:
    if isinstance(item, list):
        return b"".join(json.dumps(e.to_dict(), ensure_ascii=False, default=repr).encode() + b"\n" for e in item)
    if isinstance(item, StreamError):
        return json.dumps({"kind": "stream_error", "error": {"type": item.type, "message": item.message}},
                          ensure_ascii=False).encode() + b"\n"
    return b'{"kind":"heartbeat"}\n' if item is HEARTBEAT else b""


def _data(obj: Any) -> bytes:
    return b"data: " + json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=repr).encode() + b"\n\n"


def create_app(modules: Any = None, *, token: str | Iterable[str] | None = None, share_store: bool = False,
               cors_origins: Iterable[str] = (), keepalive: float = 15.0, max_body: int = 1 << 20,
               max_streams: int = 256, max_runs: int = 32, send_timeout: float = 30.0, pending: float = 5.0,
               cancel_on_disconnect: bool = False, viewer: bool = True) -> Starlette:
    """Return the web edge as a Starlette app serving ``modules``.

    ``modules``: a mapping name -> module, a list of modules (served under their names), or
    one module; modules are ``ModuleBase`` modules, DSPy-style programs or plain callables.
    ``token``: one bearer token or several (each a principal; see ``_access`` for the
    model). ``share_store``: with tokens, also let them read sessions not started here.
    ``cors_origins``: origins allowed to call from a browser (``["*"]`` for any).
    ``keepalive``: seconds of silence before a heartbeat. ``max_body`` bytes per request
    body; ``max_streams`` open streams; ``max_runs`` runs running at once;
    ``send_timeout`` s a client may read nothing before it is dropped; ``pending`` s a
    reader waits for a session that does not exist yet before 404.
    ``cancel_on_disconnect``: a client leaving a stream its own request started cancels that
    run (per request: ``?cancel_on_disconnect=true``). Raises ``ValueError`` for bad values.
    """
    edge = _Edge(modules, token=token, share_store=share_store, keepalive=keepalive, max_body=max_body,
                 max_streams=max_streams, max_runs=max_runs, send_timeout=send_timeout, pending=pending,
                 cancel_on_disconnect=cancel_on_disconnect)

    def cancel_on_leave(request: Request, sid: str) -> Callable[[], object] | None:
        raw = request.query_params.get("cancel_on_disconnect")
        wanted = edge.cancel_on_disconnect if raw is None else raw.lower() in ("1", "true", "yes")
        return (lambda: edge.runner.cancel(sid)) if wanted else None

    def start(name: str | None, value: Any, principal: str, history: list[list[str]] | None = None) -> str:
        if name is None:
            if len(edge.runner.modules) != 1:
                raise BadRequest("module", f"name the module to run; served: {sorted(edge.runner.modules)}")
            name = next(iter(edge.runner.modules))
        if not isinstance(name, str) or name not in edge.runner.modules:
            raise BadRequest("module", f"no module {name!r} is served here; served: {sorted(edge.runner.modules)}",
                             status=404)
        try:
            return edge.runner.start(name, value, principal, history=history).sid
        except TooManyRuns as e:
            raise BadRequest("runs", str(e), status=503) from None

    # --- pages and listings -------------------------------------------------------------
    async def index(request: Request) -> Response:
        return FileResponse(VIEWER / "index.html", headers={"Cache-Control": "no-cache"})

    @_handles_errors
    async def modules_route(request: Request) -> Response:
        edge.principal(request)
        return JSONResponse({"modules": [{"name": n, "type": type(m).__name__} for n, m in edge.runner.modules.items()],
                             "auth": edge.access.enabled})

    @_handles_errors
    async def runs_route(request: Request) -> Response:
        principal = edge.principal(request)
        if request.method == "GET":
            owner = principal if edge.access.enabled else None
            return JSONResponse({"runs": [r.to_dict() for r in edge.runner.list(owner)]})
        body = await _body(request, edge)
        if not isinstance(body, dict) or "input" not in body:
            raise BadRequest("body", f"POST /runs needs a JSON object {{\"module\": name, \"input\": value}}, "
                                     f"got {json.dumps(body)[:200]}")
        sid = start(body.get("module"), body["input"], principal)
        return JSONResponse({"sid": sid, "status": "running", "events": f"/sessions/{sid}/events"}, status_code=201)

    @_handles_errors
    async def session_route(request: Request) -> Response:
        sid = request.path_params["sid"]
        _params(request, ("access_token",))
        await edge.readable(request, sid, wait=False)

        def summary() -> dict[str, Any]:
            info = backend().session_info(sid)
            events = read_session(sid)
            ended = info is not None and info["ended"] is not None
            return {"sid": sid, "events": len(events), "last_seq": events[-1].seq if events else 0,
                    "ended": ended, "status": (info or {}).get("status") if ended else "running"}
        body = await to_thread.run_sync(summary)
        run = edge.runner.get(sid)
        if run is not None:
            body["module"] = run.module
        return JSONResponse(body)

    @_handles_errors
    async def events_route(request: Request) -> Response | _StreamResponse:
        sid = request.path_params["sid"]
        params = _params(request, _STREAM_PARAMS)
        req = _stream_request(_sid_param(sid), params, request.headers.get("last-event-id"))
        fmt = params.get("format") or ("ndjson" if _NDJSON in request.headers.get("accept", "") else "sse")
        if fmt not in ("sse", "ndjson"):
            raise BadRequest("format", f"format={fmt!r} is not one of sse, ndjson")
        await edge.readable(request, sid, wait=True)
        if await to_thread.run_sync(_ended_before, req.sid, req.after):
            return Response(status_code=204)   # tells EventSource to stop reconnecting
        encode = _encode_sse if fmt == "sse" else _encode_ndjson

        async def body(stop: asyncio.Event) -> AsyncGenerator[bytes, None]:
            async with contextlib.aclosing(session_stream(edge.hub, req, keepalive=edge.keepalive,
                                                          closing=stop)) as items:
                async for item in items:
                    data = encode(item)
                    if data:
                        yield data
        media = "text/event-stream; charset=utf-8" if fmt == "sse" else _NDJSON
        return _StreamResponse(edge, body, media)

    @_handles_errors
    async def cancel_route(request: Request) -> Response:
        sid = request.path_params["sid"]
        await edge.readable(request, sid, wait=False)
        try:
            cancelled = await to_thread.run_sync(edge.runner.cancel, sid)
        except NotImplementedError as e:
            raise BadRequest("sid", str(e), status=501) from None
        return JSONResponse({"sid": sid, "cancelled": cancelled}, status_code=202 if cancelled else 409)

    # --- wire formats -------------------------------------------------------------------
    def projected(sid: str, make: Callable[[], Any], encode: Callable[[Any], bytes],
                  done: bytes | None) -> Callable[[asyncio.Event], AsyncGenerator[bytes, None]]:
        async def body(stop: asyncio.Event) -> AsyncGenerator[bytes, None]:
            projector = make()
            items = session_stream(edge.hub, StreamRequest(sid), keepalive=edge.keepalive, closing=stop)
            async for item in _closing(items):
                if item is HEARTBEAT:
                    yield _sse.KEEPALIVE
                elif isinstance(item, list):
                    out = b"".join(encode(chunk) for event in item for chunk in projector.feed(event))
                    if out:
                        yield out
                    if projector.finished:
                        break
                elif isinstance(item, StreamError):
                    yield encode({"type": "error", "errorText": f"{item.type}: {item.message}"}
                                 if isinstance(projector, VercelProjector) else
                                 {"type": "RUN_ERROR", "message": item.message, "code": item.type}
                                 if isinstance(projector, AGUIProjector) else
                                 {"error": {"message": item.message, "type": item.type}})
                    break
            if done is not None:
                yield done
        return body

    @_handles_errors
    async def models_route(request: Request) -> Response:
        edge.principal(request)
        return JSONResponse({"object": "list", "data": [{"id": n, "object": "model", "created": 0,
                                                         "owned_by": "lazystream"} for n in edge.runner.modules]})

    @_handles_errors
    async def chat_completions(request: Request) -> Response | _StreamResponse:
        principal = edge.principal(request)
        body = await _body(request, edge)
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            raise BadRequest("messages", "POST /v1/chat/completions needs a JSON object with \"model\" and "
                                         "\"messages\" (a list), as the OpenAI API takes")
        model = body.get("model")
        text, history = _conversation(body["messages"], "content")
        sid = start(model if isinstance(model, str) else None, text, principal, history)
        run = edge.runner.get(sid)
        assert run is not None   # started just above
        model = run.module
        if not body.get("stream"):
            events = await to_thread.run_sync(_read_to_end, sid)
            try:
                return JSONResponse(openai_completion(events, model=model))
            except RuntimeError as e:
                return JSONResponse({"error": {"message": str(e), "type": "run_error", "code": None}},
                                    status_code=500)
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return _StreamResponse(edge, projected(sid, lambda: OpenAIProjector(model=model, include_usage=include_usage),
                                               _data, b"data: [DONE]\n\n"),
                               "text/event-stream; charset=utf-8", {"x-lazystream-sid": sid},
                               cancel_on_leave(request, sid))

    @_handles_errors
    async def vercel_chat(request: Request) -> Response | _StreamResponse:
        principal = edge.principal(request)
        body = await _body(request, edge)
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            raise BadRequest("messages", "POST /api/chat needs the JSON useChat sends: {\"messages\": [UIMessage…]}")
        text, history = _conversation(body["messages"], "parts")
        sid = start(request.query_params.get("module") or body.get("module"), text, principal, history)
        return _StreamResponse(edge, projected(sid, VercelProjector, _data, b"data: [DONE]\n\n"),
                               "text/event-stream; charset=utf-8", {**VERCEL_HEADERS, "x-lazystream-sid": sid},
                               cancel_on_leave(request, sid))

    @_handles_errors
    async def agui_route(request: Request) -> Response | _StreamResponse:
        principal = edge.principal(request)
        body = await _body(request, edge)
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list) \
                or not isinstance(body.get("threadId"), str) or not isinstance(body.get("runId"), str):
            raise BadRequest("body", "POST /agui needs an AG-UI RunAgentInput: {\"threadId\", \"runId\", "
                                     "\"messages\": [...], …}")
        text, history = _conversation(body["messages"], "content")
        sid = start(request.query_params.get("module"), text, principal, history)
        thread_id, run_id = body["threadId"], body["runId"]
        return _StreamResponse(edge, projected(sid, lambda: AGUIProjector(thread_id=thread_id, run_id=run_id),
                                               _data, None),
                               "text/event-stream; charset=utf-8", {"x-lazystream-sid": sid},
                               cancel_on_leave(request, sid))

    routes: list[BaseRoute] = [
        Route("/api/modules", modules_route, methods=["GET"]),
        Route("/runs", runs_route, methods=["GET", "POST"]),
        Route("/sessions", runs_route, methods=["GET"]),
        Route("/sessions/{sid:path}/events", events_route, methods=["GET"]),
        Route("/sessions/{sid:path}/cancel", cancel_route, methods=["POST"]),
        Route("/sessions/{sid:path}", session_route, methods=["GET"]),
        Route("/v1/models", models_route, methods=["GET"]),
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/api/chat", vercel_chat, methods=["POST"]),
        Route("/agui", agui_route, methods=["POST"]),
    ]
    if viewer:
        routes += [Route("/", index, methods=["GET"]), Mount("/viewer", StaticFiles(directory=VIEWER), name="viewer")]
    origins = list(cors_origins)
    middleware = [Middleware(CORSMiddleware, allow_origins=origins, allow_methods=["GET", "POST"],
                             allow_headers=["Authorization", "Content-Type", "Last-Event-ID"],
                             expose_headers=["x-lazystream-sid", "x-vercel-ai-ui-message-stream"],
                             max_age=600)] if origins else []
    app = Starlette(routes=routes, middleware=middleware,
                    exception_handlers={404: _route_not_found, 405: _route_not_found})
    app.state.edge = edge
    return app


_ROUTES = ("GET /, GET /api/modules, GET|POST /runs, GET /sessions, GET /sessions/{sid}, GET /sessions/{sid}/events, "
           "POST /sessions/{sid}/cancel, GET /v1/models, POST /v1/chat/completions, POST /api/chat, POST /agui")


async def _route_not_found(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 404)
    return JSONResponse({"error": f"no route {request.method} {request.url.path}; the routes: {_ROUTES}",
                         "parameter": "path"}, status_code=status)


async def _closing(items: AsyncGenerator[Any, None]) -> AsyncGenerator[Any, None]:
    """Iterate ``items`` and close it when the consumer stops early (so its client slot is freed now)."""
    async with contextlib.aclosing(items):
        async for item in items:
            yield item


# A read that may block this long: a blocking read makes the store listen for other
# processes' writes, so what they stored is seen (a plain read may answer from a cache).
_GLANCE = 0.001


def _ended_before(sid: str, after: int) -> bool:
    info = backend().session_info(sid)
    return info is not None and info["ended"] is not None and \
        not read_session(sid, after, limit=1, timeout=_GLANCE)


def _read_to_end(sid: str) -> list[Event]:
    from ..queue import tail
    return list(tail(sid))


def _text_of(message: Any, field: str) -> str | None:
    """A message's text (OpenAI/AG-UI ``content``, or UIMessage ``parts``), or None."""
    if not isinstance(message, dict):
        return None
    content = message.get(field) if field in message else message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return None


def _conversation(messages: list[Any], field: str) -> tuple[str, list[list[str]]]:
    """``(the last user message's text, the earlier turns)``: the run's input, and LazyLLM's
    ``llm_chat_history`` pairs ``[user, assistant]`` for a module that takes them, so a chat
    UI's second question is asked with the first one's answer in view."""
    last = next((i for i in range(len(messages) - 1, -1, -1)
                 if isinstance(messages[i], dict) and messages[i].get("role") == "user"
                 and _text_of(messages[i], field) is not None), None)
    if last is None:
        raise BadRequest("messages", "no user message with text in \"messages\"; the last user message's text "
                                     "is the run's input")
    history: list[list[str]] = []
    for message in messages[:last]:
        role, text = (message.get("role") if isinstance(message, dict) else None), _text_of(message, field)
        if text is None or role not in ("user", "assistant"):
            continue   # system prompts and tool turns belong to the served module, not the client
        if role == "user" or not history or history[-1][1]:
            history.append([text, ""] if role == "user" else ["", text])
        else:
            history[-1][1] = text
    return str(_text_of(messages[last], field)), history
