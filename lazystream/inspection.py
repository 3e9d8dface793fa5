"""Stored sessions for people: the table ``lazystream sessions`` prints and the summary of
``lazystream show SID``.

Everything here reads through the queue's public API (``sessions``, ``read_session``), so it
works on whichever backend ``LAZYSTREAM_QUEUE`` names, off the hot path of any producer.
The summary is rendered from the event model of ``docs/events.md`` alone.
"""
from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .events import TERMINAL, Event
from .queue import producer_gone, read_session, sessions

__all__ = ["SessionRow", "format_sessions", "list_sessions", "summarize"]


@dataclass(frozen=True)
class SessionRow:
    """One line of ``lazystream sessions``."""

    sid: str
    status: str          # ok / error / cancelled / running / producer exited
    events: int
    started: float
    last: float | None
    pid: int | None
    host: str | None = None


def _status(sid: str, ended: float | None, status: str | None) -> str:
    if ended is not None:
        return status or "ended"
    return "producer exited" if producer_gone(sid) else "running"


def list_sessions(limit: int | None = None) -> list[SessionRow]:
    """Return the stored sessions, newest first (at most ``limit``).

    Raises ``StorageError`` when the store cannot be read.
    """
    rows = sessions(limit)
    return [SessionRow(sid=r["sid"], status=_status(r["sid"], r.get("ended"), r.get("status")),
                       events=int(r.get("events") or 0), started=float(r["started"]),
                       last=r.get("last"), pid=r.get("pid"), host=r.get("host")) for r in rows]


def _age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def format_sessions(rows: Iterable[SessionRow], now: float | None = None) -> str:
    """Return ``rows`` as an aligned text table: SID, STATUS, EVENTS, AGE, PROCESS."""
    now = time.time() if now is None else now
    table = [("SID", "STATUS", "EVENTS", "AGE", "PROCESS")]
    for r in rows:
        elsewhere = r.host and r.host != socket.gethostname()
        process = "-" if r.pid is None else f"pid {r.pid}" + (f" on {r.host}" if elsewhere else "")
        table.append((r.sid, r.status, str(r.events), _age(now - r.started), process))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    return "\n".join("  ".join(cell.ljust(w) if i != 2 else cell.rjust(w)
                               for i, (cell, w) in enumerate(zip(row, widths))).rstrip()
                     for row in table)


def _short(value: Any, limit: int = 160) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = text.replace("\n", "\\n")
    return text if len(text) <= limit else text[:limit - 1] + "…"


_PIECES = ("tool_call_start", "tool_call_delta")


@dataclass
class _Message:
    id: str
    role: str = "assistant"
    model: str | None = None
    text: list[str] = field(default_factory=list)
    think: list[str] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    usage: dict[str, Any] | None = None
    finish: str | None = None


def _usage_text(usage: dict[str, Any]) -> str:
    return (f"prompt {usage.get('prompt_tokens', '?')}, completion {usage.get('completion_tokens', '?')}, "
            f"total {usage.get('total_tokens', '?')}")


class _Summary:
    """Folds events, in order, into indented lines."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.depth = 0
        self.open: dict[tuple[str, ...], _Message] = {}     # the open message per ns
        self.loose: dict[tuple[str, ...], _Message] = {}    # text outside any message
        self.totals = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        self.counted = False

    def say(self, text: str) -> None:
        self.lines.append("  " * self.depth + text)

    def flush_loose(self, ns: tuple[str, ...]) -> None:
        msg = self.loose.pop(ns, None)
        if msg is not None and (msg.text or msg.think):
            self.emit_message(msg, header=f"text{' (' + '/'.join(ns) + ')' if ns else ''}")

    def emit_message(self, msg: _Message, header: str) -> None:
        self.say(header)
        self.depth += 1
        if msg.think:
            self.say(f"thinking: {_short(''.join(msg.think))}")
        if msg.text:
            self.say(f"text: {_short(''.join(msg.text))}")
        for call in msg.calls:
            self.say(f"tool call {call}")
        if msg.usage:
            self.say(f"usage: {_usage_text(msg.usage)}")
        self.depth -= 1

    def add(self, e: Event) -> None:
        kind, data, ns = e.kind, e.data, e.ns
        if kind in ("text", "think"):
            into = self.open.get(ns) or self.loose.setdefault(ns, _Message(id=""))
            (into.text if kind == "text" else into.think).append(str(data))
            return
        if kind in _PIECES:
            return   # the complete tool_call that follows says it all
        d = data if isinstance(data, dict) else {}
        if kind != "usage":
            self.flush_loose(ns)
        if kind == "run_start":
            self.say(f"run {d.get('run')} {d.get('name') or ''}: input {_short(d.get('input'))}".replace("  ", " "))
            self.depth += 1
        elif kind == "message_start":
            self.open[ns] = _Message(id=str(d.get("id")), role=d.get("role") or "assistant", model=d.get("model"))
        elif kind == "tool_call":
            msg = self._message(d.get("message"), ns)
            line = f"{d.get('name')}({_short(d.get('arguments'), 200)}) id {d.get('id')}"
            if msg is not None:
                msg.calls.append(line)
            else:
                self.say(f"tool call {line}")
        elif kind == "usage":
            self._count(d)
            msg = self._message(d.get("message"), ns)
            if msg is not None:
                msg.usage = d
            else:
                self.say(f"usage: {_usage_text(d)}")
        elif kind == "message_end":
            ended = self.open.pop(ns, None) or self._message(d.get("id"), ns, pop=True)
            if ended is not None:
                model = f", model {ended.model}" if ended.model else ""
                self.emit_message(ended, f"message {ended.id} ({ended.role}{model}): finish {d.get('finish_reason')}")
        elif kind == "tool_start":
            self.say(f"tool {d.get('name')} started, id {d.get('id')}: {_short(d.get('arguments'), 200)}")
        elif kind == "tool_result":
            err = d.get("error")
            outcome = f"ERROR {_short(err)}" if err else _short(d.get("content"))
            self.say(f"tool {d.get('name')} -> {outcome}")
        elif kind == "trace":
            text = d.get("text") if d else data
            where = d.get("path") or d.get("module")
            self.say(f"trace{' ' + str(where) if where else ''}: {_short(text)}")
        elif kind == "status":
            self.say(f"status: {_short(data)}")
        elif kind == "error":
            self.say(f"ERROR {d.get('type')}: {_short(d.get('message'), 400)}")
        elif kind == "run_end":
            self.depth = max(0, self.depth - 1)
            err = d.get("error") or {}
            self.say(f"run {d.get('run')} ended {d.get('status')}"
                     + (f": {err.get('type')}: {_short(err.get('message'))}" if err else "")
                     + (f"; output {_short(d.get('output'))}" if d.get("output") is not None else ""))
            if isinstance(d.get("usage"), dict):
                self.depth += 1
                self.say(f"usage: {_usage_text(d['usage'])}")
                self.depth -= 1
        elif kind == TERMINAL:
            pass
        else:
            self.say(f"{kind}: {_short(data)}")

    def _message(self, mid: Any, ns: tuple[str, ...], pop: bool = False) -> _Message | None:
        for key, msg in list(self.open.items()):
            if mid is not None and msg.id == str(mid):
                if pop:
                    del self.open[key]
                return msg
        return None if pop else self.open.get(ns)

    def _count(self, usage: dict[str, Any]) -> None:
        for key in self.totals:
            if isinstance(usage.get(key), int):
                self.totals[key] += usage[key]
                self.counted = True


def summarize(sid: str, events: list[Event] | None = None) -> str:
    """Return a readable summary of session ``sid``: its runs, messages (text, tool calls,
    usage), tool results, status messages, errors and how it ended.

    Raises ``LookupError`` when the store holds no event of ``sid``.
    """
    events = read_session(sid) if events is None else events
    if not events:
        raise LookupError(f"session {sid!r} has no stored events: check the id with "
                          f"'lazystream sessions' (and LAZYSTREAM_HOME / LAZYSTREAM_QUEUE)")
    s = _Summary()
    for e in events:
        s.add(e)
    for ns in list(s.loose):
        s.flush_loose(ns)
    for msg in list(s.open.values()):
        s.emit_message(msg, f"message {msg.id} ({msg.role}): still open")
    end = next((e for e in reversed(events) if e.kind == TERMINAL), None)
    duration = events[-1].ts - events[0].ts
    if end is None:
        ending = "not ended"
    else:
        d = end.data if isinstance(end.data, dict) else {}
        err = d.get("error") or {}
        ending = f"ended {d.get('status')}" + (f" ({err.get('type')}: {_short(err.get('message'))})" if err else "")
    head = [f"session {sid}: {ending}, {len(events)} events over {duration:.2f} s"]
    if s.counted:
        head.append(f"usage: {_usage_text(s.totals)}")
    return "\n".join(head + s.lines)
