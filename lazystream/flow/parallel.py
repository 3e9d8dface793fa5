"""``parallel`` (every branch gets the input), ``diverter`` (branch i gets input i) and
``warp`` (one step over each input), each running its branches at once.

Branches run on ``lazystream.ThreadPoolExecutor`` under the caller's session; whatever
branch i writes carries ``branch<i>`` in its ``ns``, so a reader can tell interleaved
branches apart. The result is a ``package`` (a tuple) in branch order, or — after
``.sum``, ``.asdict``, ``.astuple``, ``.aslist``, ``.join(s)`` — that shape.
``parallel.sequential(...)`` (and ``diverter.sequential``) runs the branches one by one.
"""
from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import Any

from ..executor import work_pool
from ..session import ns_scope
from ._base import FlowBase, step_name
from .package import package
from .pipeline import pipeline

__all__ = ["BranchError", "diverter", "parallel", "warp"]

_DEFAULT_CONCURRENCY = 5   # LazyLLM's default number of branch threads


class BranchError(RuntimeError):
    """A branch failed; ``.branch`` is its index, ``__cause__`` the error."""

    def __init__(self, kind: str, branch: int, name: str, error: BaseException) -> None:
        super().__init__(f"{kind} branch {branch} ({name}) failed: {type(error).__name__}: {error}")
        self.branch = branch


class parallel(FlowBase):
    """Give the same input to every branch, run them at once, return results in branch order.

    ``_concurrent``: True (up to 5 branches at once), an int (that many), or False (one by
    one). Raises ``BranchError`` naming the first failing branch (by index).
    """

    _kind = "parallel"

    def __init__(self, *steps: Any, _concurrent: bool | int = True,
                 post_action: Callable[..., Any] | None = None, return_trace: bool = False,
                 name: str | None = None, **named: Any) -> None:
        super().__init__(*steps, post_action=post_action, return_trace=return_trace, name=name,
                         **named)
        if isinstance(_concurrent, bool):
            workers = _DEFAULT_CONCURRENCY if _concurrent else 0
        elif isinstance(_concurrent, int) and _concurrent >= 0:
            workers = _concurrent
        else:
            raise ValueError(f"{self._kind}: _concurrent must be True, False or a number of "
                             f"threads >= 0, got {_concurrent!r}")
        object.__setattr__(self, "_workers", workers)
        object.__setattr__(self, "_shape", None)
        object.__setattr__(self, "_joiner", "")

    @classmethod
    def sequential(cls, *steps: Any, **kwargs: Any) -> parallel:
        """The same flow, running its branches one after another."""
        return cls(*steps, _concurrent=False, **kwargs)

    # --- the shape of the result ------------------------------------------------------
    def _set_shape(self, shape: str, joiner: str = "") -> parallel:
        if self._shape is not None:
            raise ValueError(f"{self._kind}: the result is already shaped by .{self._shape}; "
                             f"choose one of .sum, .asdict, .astuple, .aslist, .join()")
        object.__setattr__(self, "_shape", shape)
        object.__setattr__(self, "_joiner", joiner)
        return self

    @property
    def sum(self) -> parallel:
        """Return the sum of the results (strings are concatenated)."""
        return self._set_shape("sum")

    @property
    def asdict(self) -> parallel:
        """Return ``{step name: result}``; every step must be named."""
        return self._set_shape("asdict")

    @property
    def astuple(self) -> parallel:
        """Return a plain ``tuple`` (the next step gets it as one argument)."""
        return self._set_shape("astuple")

    @property
    def aslist(self) -> parallel:
        """Return a ``list``."""
        return self._set_shape("aslist")

    def join(self, string: str = "") -> parallel:
        """Return the results' ``str`` joined by ``string``."""
        if not isinstance(string, str):
            raise TypeError(f"{self._kind}.join: the separator must be a str, got {string!r}")
        return self._set_shape("join", string)

    def _shaped(self, results: package) -> Any:
        shape = self._shape
        if shape == "asdict":
            if not all(self._item_names):
                raise ValueError(f"{self._kind}.asdict: every step needs a name "
                                 f"({self._kind}(a=f, b=g) or p.a = f in a `with` block)")
            return dict(zip(self._item_names, results))
        if shape == "astuple":
            return tuple(results)
        if shape == "aslist":
            return list(results)
        if shape == "join":
            return self._joiner.join(str(r) for r in results)
        if shape == "sum":
            if not results:
                return results
            if isinstance(results[0], str):
                return "".join(str(r) for r in results)
            return sum(results[1:], results[0])
        return results

    # --- running ----------------------------------------------------------------------
    def _plan(self, value: Any) -> tuple[list[Any], list[Any]]:
        """The branches and the input of each: here every step gets the same value."""
        return list(self._items), [value] * len(self._items)

    def _run(self, value: Any, **kwargs: Any) -> Any:
        branches, inputs = self._plan(value)

        def run(i: int, step: Any, arg: Any) -> Any:
            with ns_scope(f"branch{i}"):
                return self._invoke(step, arg, **kwargs)

        calls = [functools.partial(run, i, step, arg)
                 for i, (step, arg) in enumerate(zip(branches, inputs))]
        pool = work_pool(min(self._workers, len(calls)) or 1) if self._workers else None
        with pool or contextlib.nullcontext():
            # One by one: each call runs when its result is asked for; at once: all submitted first.
            outcomes: list[Callable[[], Any]] = (
                [pool.submit(call).result for call in calls] if pool else list(calls))
            results = []
            for i, outcome in enumerate(outcomes):
                try:
                    results.append(outcome())
                except Exception as e:
                    raise BranchError(self._kind, i, step_name(branches[i]), e) from e
        return self._shaped(package(results))


class diverter(parallel):
    """Branch i gets input i: ``diverter(f, g)(x, y) == (f(x), g(y))``.

    The inputs are the call's arguments, one tuple/list, or a dict keyed by step name.
    Raises ``ValueError`` when their number does not match the branches.
    """

    _kind = "diverter"

    def _plan(self, value: Any) -> tuple[list[Any], list[Any]]:
        n = len(self._items)
        if isinstance(value, dict):
            names = self._item_names
            missing = [k for k in names if k not in value]
            if not all(names) or missing:
                raise ValueError(f"{self._kind}: a dict input needs every step named and a value "
                                 f"for each; steps {names!r}, missing {missing!r}")
            return list(self._items), [value[k] for k in names]
        if isinstance(value, package) and len(value) == 1 and isinstance(value[0], (tuple, list)):
            value = value[0]
        if not isinstance(value, (tuple, list)) or len(value) != n:
            raise ValueError(f"{self._kind}: needs {n} inputs, one per branch, got {value!r}; "
                             f"call it with {n} arguments, a tuple/list of {n}, or a dict by name")
        return list(self._items), list(value)


class warp(parallel):
    """Run one step (several steps form a pipeline) on each input at once:
    ``warp(f)(1, 2, 3) == (f(1), f(2), f(3))``.

    The inputs are the call's arguments or one tuple/list. Raises ``ValueError`` for named
    steps with ``.asdict``.
    """

    _kind = "warp"

    def __init__(self, *steps: Any, **kwargs: Any) -> None:
        super().__init__(*steps, **kwargs)
        self._finish()

    def _finish(self) -> None:
        if len(self._items) > 1:
            object.__setattr__(self, "_items", [pipeline(*self._items)])
            object.__setattr__(self, "_item_names", [None])

    @property
    def asdict(self) -> parallel:
        raise ValueError("warp: .asdict is not available (its branches are its inputs, which "
                         "have no names); use .aslist or .astuple")

    def _plan(self, value: Any) -> tuple[list[Any], list[Any]]:
        if isinstance(value, package) and len(value) == 1:
            value = value[0]
        if not isinstance(value, (tuple, list)):
            raise ValueError(f"warp: needs several inputs (arguments or one tuple/list), got "  # noqa: TRY004 - callers handle ValueError for every bad value
                             f"{value!r}")
        return self._items * len(value), list(value)
