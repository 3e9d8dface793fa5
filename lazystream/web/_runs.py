"""The modules an app serves, and the runs it started: start, list, cancel.

Each run gets a fresh session whose id carries 128 random bits, runs in a daemon thread
inside ``session(sid)`` as one ``run_start`` … ``run_end`` (``lazystream.runs``), and so
ends with the session's ``end`` event. How input becomes a call: a DSPy-style program
(``programs.Module``) given a JSON object is called with it as keyword arguments, given
text with its first input field set to it; anything else is called with the input as its
one argument.
"""
from __future__ import annotations

import inspect
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import runs as _runs
from ..module import ModuleBase
from ..session import session

__all__ = ["RunInfo", "Runner", "TooManyRuns", "module_name"]


class TooManyRuns(RuntimeError):
    """As many runs as allowed are running; the client should retry later."""


@dataclass
class RunInfo:
    """One run this app started. ``status``: running, ok, error or cancelled."""

    sid: str
    module: str
    owner: str
    started: float
    status: str = "running"
    error: dict[str, str] | None = None
    finished: float | None = None
    done: threading.Event = field(default_factory=threading.Event, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"sid": self.sid, "module": self.module, "status": self.status, "started": self.started,
                "finished": self.finished, "error": self.error}


def module_name(module: Any) -> str:
    """The name a module is served under when none is given."""
    if isinstance(module, ModuleBase):
        return module.name
    return getattr(module, "__name__", type(module).__name__)


def _first_input_field(module: Any) -> str | None:
    predictors = getattr(module, "predictors", None)
    if callable(predictors):
        for predictor in predictors():
            fields = getattr(getattr(predictor, "signature", None), "input_fields", None)
            if fields:
                return next(iter(fields))
    return None


def call_args(module: Any, value: Any, history: list[list[str]] | None = None) -> tuple[tuple, dict]:
    """The positional and keyword arguments ``module`` is called with for ``value`` (and
    earlier chat turns, passed as ``llm_chat_history`` where the module takes it)."""
    if hasattr(module, "named_predictors"):   # a DSPy-style program
        if isinstance(value, dict):
            return (), dict(value)
        name = _first_input_field(module)
        if name is not None:
            return (), {name: value}
    if history and _takes_history(module):
        return (value,), {"llm_chat_history": history}
    return (value,), {}


def _takes_history(module: Any) -> bool:
    target = getattr(module, "forward", module)
    try:
        params = inspect.signature(target).parameters
    except (TypeError, ValueError):
        return False
    return "llm_chat_history" in params


class Runner:
    """Starts runs of the served modules and remembers the last ``keep`` of them."""

    def __init__(self, modules: Mapping[str, Any], *, max_running: int = 32, keep: int = 1000) -> None:
        for name, module in modules.items():
            if not isinstance(name, str) or not name or "/" in name:
                raise ValueError(f"modules: a module's name must be a non-empty string without '/', got {name!r}")
            if not callable(module):
                raise ValueError(f"modules: {name!r} is {module!r}, which is not callable; serve a ModuleBase "  # noqa: TRY004 - callers handle ValueError for every bad value
                                 "module, a DSPy-style program or a function")
        self.modules = dict(modules)
        self.max_running = max_running
        self._keep = keep
        self._lock = threading.Lock()
        self._runs: OrderedDict[str, RunInfo] = OrderedDict()
        self._running = 0

    def start(self, name: str, value: Any, owner: str, *, history: list[list[str]] | None = None) -> RunInfo:
        """Start ``modules[name]`` on ``value`` in a fresh session; return its ``RunInfo``.

        Raises ``KeyError`` for an unknown module and ``TooManyRuns`` at the limit.
        """
        module = self.modules[name]
        args, kwargs = call_args(module, value, history)
        with self._lock:
            if self._running >= self.max_running:
                raise TooManyRuns(f"{self._running} runs are running, the limit (max_runs) is {self.max_running}; "
                                  "retry when one ends")
            self._running += 1
            info = RunInfo(f"run-{secrets.token_hex(16)}", name, owner, time.time())
            self._runs[info.sid] = info
            while len(self._runs) > self._keep:
                oldest = next(iter(self._runs.values()))
                if oldest.status == "running":
                    break
                self._runs.popitem(last=False)
        threading.Thread(target=self._run, args=(info, name, module, args, kwargs),
                         name=f"lazystream-run {info.sid}", daemon=True).start()
        return info

    def _run(self, info: RunInfo, name: str, module: Callable[..., Any], args: tuple, kwargs: dict) -> None:
        try:
            with session(info.sid):
                _runs.run_call(name, module, args, kwargs)
            info.status = "ok"
        except BaseException as e:  # noqa: BLE001 - recorded; the session's events carry it
            info.status = "cancelled" if isinstance(e, _runs.RunCancelled) else "error"
            if info.status == "error":
                info.error = {"type": type(e).__name__, "message": str(e)}
        finally:
            info.finished = time.time()
            with self._lock:
                self._running -= 1
            info.done.set()

    def get(self, sid: str) -> RunInfo | None:
        with self._lock:
            return self._runs.get(sid)

    def list(self, owner: str | None) -> list[RunInfo]:
        """The remembered runs, newest first; only ``owner``'s unless ``owner`` is None."""
        with self._lock:
            runs = list(self._runs.values())
        return [r for r in reversed(runs) if owner is None or r.owner == owner]

    def cancel(self, sid: str) -> bool:
        """Cancel the session's runs (any process sharing the store); False if it already ended."""
        return _runs.cancel(sid)
