"""Stand-in for ``lazystream.runs`` until the run model is on main: run_start/run_end
around the call; cancellation is not available (``cancel`` raises)."""
from __future__ import annotations

import concurrent.futures
import uuid
from collections.abc import Callable
from typing import Any

from ..queue import emit


class RunCancelled(concurrent.futures.CancelledError):
    """The run was cancelled."""


def run_call(name: str, fn: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
    run = f"run_{uuid.uuid4().hex}"
    emit("run_start", {"run": run, "name": name, "input": args[0] if args else kwargs}, ns=())
    try:
        result = fn(*args, **kwargs)
    except BaseException as e:
        emit("error", {"type": type(e).__name__, "message": str(e)}, ns=())
        emit("run_end", {"run": run, "status": "error", "error": {"type": type(e).__name__, "message": str(e)},
                         "output": None, "usage": None}, ns=())
        raise
    emit("run_end", {"run": run, "status": "ok", "error": None, "output": None, "usage": None}, ns=())
    return result


def cancel(sid: str) -> bool:
    raise NotImplementedError("cancel needs lazystream.runs (the run model), not on this branch yet")
