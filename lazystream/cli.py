"""``lazystream <command>`` (or ``python -m lazystream <command>``): a small argparse dispatcher.

Each command is one ``_add_<name>(subparsers)`` function that adds its parser and sets
``run=`` to a function ``run(args) -> int``; add a command by writing one and listing it
in ``COMMANDS``.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["COMMANDS", "main"]


def _add_engine(sub: Any) -> None:
    p = sub.add_parser("engine", help="serve the bundled scripted OpenAI-compatible engine",
                       description="Serve the bundled scripted engine (not a model) on "
                                   "http://HOST:PORT/v1 until interrupted.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000, help="0 picks a free port (default 8000)")
    p.add_argument("--policy", default="demo",
                   help="'demo' (default), 'echo', 'program' (answers DSPy-style adapter prompts), "
                        "or module:callable taking a Request")
    p.add_argument("--script", metavar="FILE",
                   help="JSON list of replies: strings or {content, tool_calls, reasoning_content}")
    p.add_argument("--loop", action="store_true", help="with --script: start over when it runs out")
    p.add_argument("--tokens-per-second", type=float, default=None)
    p.add_argument("--chunk-size", type=int, default=1)
    p.add_argument("--ttft", type=float, default=0.0, help="seconds before the first token")
    p.add_argument("--tool-call-format", choices=["internlm2", "qwen"], default=None,
                   help="write tool calls as raw text special tokens")
    p.add_argument("--model", default="lazystream-engine", help="the model id /v1/models lists")
    p.add_argument("--api-key", default=None, help="require this Bearer key")
    p.add_argument("--fail-first", type=int, default=0, help="answer the first N requests with --status")
    p.add_argument("--status", type=int, default=500)
    p.add_argument("--cut-after", type=int, default=None, help="cut every stream after K tokens")
    p.set_defaults(run=_run_engine)


def _fail(command: str, message: str) -> SystemExit:
    """The one-line error every command ends with: ``lazystream COMMAND: message``."""
    return SystemExit(f"lazystream {command}: {message}")


def _load_policy(args: argparse.Namespace) -> Any:
    from .engine import Script, demo_policy, echo
    if args.script:
        try:
            with open(args.script, encoding="utf-8") as f:
                turns = json.load(f)
        except OSError as e:
            raise _fail("engine", f"--script {args.script}: cannot read it ({e.strerror or e}); "
                                  f"give the path of a JSON file") from None
        except ValueError as e:
            raise _fail("engine", f"--script {args.script}: not valid JSON ({e}); expected a "
                                  f"JSON list of replies") from None
        if not isinstance(turns, list):
            raise _fail("engine", f"--script {args.script}: expected a JSON list of replies, "
                                  f"got {type(turns).__name__}")
        try:
            return Script(turns, loop=args.loop)
        except (TypeError, ValueError) as e:
            raise _fail("engine", f"--script {args.script}: {e}") from None
    if args.policy in ("demo", "echo"):
        return demo_policy if args.policy == "demo" else echo
    if args.policy == "program":   # plays the model for DSPy-style programs (adapter prompts)
        from .programs import program_policy
        return program_policy
    module, _, attr = args.policy.partition(":")
    if not module or not attr:
        raise _fail("engine", f"--policy {args.policy!r}: use 'demo', 'echo', 'program' or module:callable")
    try:
        loaded = importlib.import_module(module)
    except Exception as e:  # noqa: BLE001 - any failure importing the user's module is reported in one line
        raise _fail("engine", f"--policy {args.policy!r}: cannot import {module!r} "
                              f"({type(e).__name__}: {e}); check the module name and PYTHONPATH") from None
    policy = getattr(loaded, attr, None)
    if not callable(policy):
        raise _fail("engine", f"--policy {args.policy!r}: {attr!r} in {module!r} is not a callable")
    return policy


def _run_engine(args: argparse.Namespace) -> int:
    from .engine import Engine, EngineError, Faults
    if not 0 <= args.port <= 65535:
        raise _fail("engine", f"--port {args.port} is out of range; use 1-65535, or 0 for a free port")
    try:
        engine = Engine(_load_policy(args), tokens_per_second=args.tokens_per_second,
                        chunk_size=args.chunk_size, ttft=args.ttft,
                        faults=Faults(fail_first=args.fail_first, status=args.status,
                                      cut_after=args.cut_after),
                        tool_call_format=args.tool_call_format, model=args.model, host=args.host,
                        port=args.port, api_key=args.api_key)
        base_url = engine.start()
    except OSError as e:
        raise _fail("engine", f"cannot listen on {args.host}:{args.port} ({e.strerror or e}); "
                              f"pick another --port (0 picks a free one)") from None
    except (EngineError, TypeError, ValueError) as e:
        raise _fail("engine", str(e)) from None
    print(f"lazystream engine (scripted, not a model) serving at {base_url}", flush=True)
    try:
        engine.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


def _add_tail(sub: Any) -> None:
    p = sub.add_parser("tail", help="follow a session's events from any process",
                       description="Print a session's events as JSON lines, as they arrive, "
                                   "through its end event. Exit status: 0 when the session "
                                   "ended ok, 1 when it ended in error or was cancelled, 2 when "
                                   "its producer died, --timeout passed, or the session is unknown "
                                   "(after LAZYSTREAM_START_GRACE s) or was removed by retention.")
    p.add_argument("sid", help="the session tag")
    p.add_argument("--after", type=int, default=0, help="resume after this seq (default 0)")
    p.add_argument("--timeout", type=float, default=None, help="give up after this many idle seconds")
    p.add_argument("--text", action="store_true", help="print only the streamed text, as it arrives")
    p.set_defaults(run=_run_tail)


def _run_tail(args: argparse.Namespace) -> int:
    from .events import TERMINAL
    from .queue import ProducerGone, SessionUnknown, backend, tail
    from .queue._front import _start_grace
    if backend().session_info(args.sid) is None:
        wait = f"giving up after {args.timeout:g} s" if args.timeout is not None else "use --timeout to give up"
        print(f"lazystream tail: session {args.sid!r} has no events yet; waiting up to {_start_grace():g} s for it "
              f"to start (LAZYSTREAM_START_GRACE), then for its events ({wait})", file=sys.stderr, flush=True)
    try:
        for event in tail(args.sid, args.after, timeout=args.timeout):
            if args.text:
                if event.kind == "text":
                    sys.stdout.write(event.data)
            else:
                sys.stdout.write(json.dumps(event.to_dict(), ensure_ascii=False) + "\n")
            sys.stdout.flush()
            if event.kind == TERMINAL:
                if args.text:
                    sys.stdout.write("\n")
                return 0 if event.data.get("status") == "ok" else 1
    except (ProducerGone, TimeoutError, SessionUnknown, ValueError) as e:
        print(f"lazystream tail: {e}", file=sys.stderr)
        return 2
    return 0


def _add_serve(sub: Any) -> None:
    p = sub.add_parser("serve", help="serve modules and sessions over HTTP (viewer, SSE, OpenAI, AI SDK, AG-UI)",
                       description="Serve the web edge until interrupted: the viewer at /, runs of the given "
                                   "modules, sessions' events as SSE/NDJSON, /v1/chat/completions, /api/chat "
                                   "(Vercel AI SDK) and /agui. Without a token anyone who reaches the port may "
                                   "start runs and read sessions, so the default address is 127.0.0.1.")
    p.add_argument("modules", nargs="*", metavar="package.module:attr",
                   help="modules to serve (a ModuleBase module, a DSPy-style program, a callable, or a "
                        "dict/list of them); none: only read sessions")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="0 picks a free port (default 8765)")
    p.add_argument("--token", action="append", default=None,
                   help="require this bearer token (repeat for several principals); "
                        "default: $LAZYSTREAM_TOKEN if set, else no authentication")
    p.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                   help="allow browser calls from this origin (repeat; '*' for any)")
    p.add_argument("--keepalive", type=float, default=15.0,
                   help="seconds of silence before an idle stream gets a heartbeat (default 15)")
    p.set_defaults(run=_run_serve)


def _load_modules(specs: list[str]) -> dict[str, Any]:
    from .web._runs import module_name
    sys.path.insert(0, "")   # the current directory, as `python -m` has it
    out: dict[str, Any] = {}
    for spec in specs:
        module, _, attr = spec.partition(":")
        if not module or not attr:
            raise SystemExit(f"lazystream serve: {spec!r} is not package.module:attr; e.g. myapp.agents:agent")
        try:
            value = importlib.import_module(module)
            for part in attr.split("."):
                value = getattr(value, part)
        except (ImportError, AttributeError) as e:
            raise SystemExit(f"lazystream serve: cannot load {spec!r}: {e}") from None
        if isinstance(value, dict):
            out.update(value)
        elif isinstance(value, (list, tuple)):
            out.update({module_name(m): m for m in value})
        else:
            out[attr.rsplit(".", 1)[-1]] = value
    return out


def _run_serve(args: argparse.Namespace) -> int:
    import os

    from .web import SessionServer
    tokens = args.token or ([os.environ["LAZYSTREAM_TOKEN"]] if os.environ.get("LAZYSTREAM_TOKEN") else None)
    try:
        server = SessionServer(args.host, args.port, modules=_load_modules(args.modules), token=tokens,
                               cors_origins=args.cors_origin, keepalive=args.keepalive)
    except (OSError, ValueError) as e:
        raise SystemExit(f"lazystream serve: {e}") from None
    try:
        print(f"lazystream serving session events at {server.url}/sessions/{{sid}}/events "
              f"(viewer: {server.url}/)", flush=True)
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


def _add_sessions(sub: Any) -> None:
    p = sub.add_parser("sessions", help="list stored sessions, newest first",
                       description="List the sessions in the store (LAZYSTREAM_HOME), newest "
                                   "first: id, status (ok, error, cancelled, running, or "
                                   "'producer exited' when its process died before ending it), "
                                   "events stored, age, and the process that wrote it.")
    p.add_argument("-n", "--limit", type=int, default=20, help="show at most N sessions (default 20; 0: all)")
    p.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")
    p.set_defaults(run=_run_sessions)


def _run_sessions(args: argparse.Namespace) -> int:
    from .inspection import format_sessions, list_sessions
    from .queue import StorageError
    if args.limit < 0:
        raise _fail("sessions", f"--limit {args.limit} is negative; give a count, or 0 for all")
    try:
        rows = list_sessions(args.limit or None)
    except (StorageError, NotImplementedError) as e:
        raise _fail("sessions", str(e)) from None
    if args.json:
        for row in rows:
            print(json.dumps(row.__dict__))
    elif rows:
        print(format_sessions(rows))
    else:
        print("no sessions stored (LAZYSTREAM_HOME is the store's directory)")
    return 0


def _add_show(sub: Any) -> None:
    p = sub.add_parser("show", help="summarize one session: runs, messages, tool calls, usage, errors",
                       description="Print a readable summary of a stored session: its runs, each "
                                   "message's text, tool calls and usage, tool results, status "
                                   "messages, errors and how it ended. 'tail SID' prints the raw events.")
    p.add_argument("sid", help="the session id (see 'lazystream sessions')")
    p.set_defaults(run=_run_show)


def _run_show(args: argparse.Namespace) -> int:
    from .inspection import summarize
    from .queue import StorageError
    try:
        print(summarize(args.sid))
    except (LookupError, StorageError) as e:
        raise _fail("show", str(e).strip("'\"")) from None
    return 0


COMMANDS: list[Callable[[Any], None]] = [_add_engine, _add_tail, _add_serve, _add_sessions, _add_show]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    from ._version import __version__
    parser = argparse.ArgumentParser(prog="lazystream", description="lazystream command line")
    parser.add_argument("--version", action="version", version=f"lazystream {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in COMMANDS:
        add(sub)
    args = parser.parse_args(argv)
    return int(args.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
