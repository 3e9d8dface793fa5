"""``FlowBase``: what every flow shares — steps given as arguments or in a ``with`` block,
named steps, and how one step is called.

Steps come as positional or keyword (named) arguments, or are assigned inside
``with pipeline() as p: p.name = step``. A class with a ``__call__`` is instantiated; a
``bind`` object routes arguments. A step that is not a flow receives a ``package`` input
unpacked (``f(*pkg)``); a flow receives it whole. Flows are modules: each call runs under
the flow's name in ``ns``, and flows that run steps at once give each its own lineage.
"""
from __future__ import annotations

import itertools
import sys
import types
from collections.abc import Callable
from typing import Any, Literal

from ..module import ModuleBase
from .bind import _FlowArg, bind
from .package import package

__all__ = ["FlowBase"]

_ids = itertools.count(1)


def _instantiate(step: Any) -> Any:
    # LazyLLM takes functor classes and instantiates them; converter types such as `str`
    # (whose instances are not callable) stay as they are.
    if isinstance(step, type) and any("__call__" in vars(c) for c in step.__mro__ if c is not object):
        return step()
    return step


class _FuncWrap:
    """A function added twice: a distinct object so ``p.f2`` names the right step."""

    def __init__(self, f: Callable[..., Any]) -> None:
        self._f = f
        self.__name__ = getattr(f, "__name__", type(f).__name__)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._f(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<step {self.__name__}>"


def step_name(step: Any) -> str:
    """The name a step goes by in error messages."""
    if isinstance(step, bind):
        step = step._f
    return step.name if isinstance(step, ModuleBase) else getattr(step, "__name__", type(step).__name__)


def split_judged(kind: str, value: Any) -> tuple[Any, Any]:
    """``(value, rest...)`` → ``(value, rest)`` for ``judge_on_full_input=False``: the first
    element is judged, the rest (one value, or a package of several) flows on.

    Raises ``TypeError`` naming the flow when ``value`` is not such a tuple.
    """
    if not (isinstance(value, tuple) and len(value) >= 2):
        raise TypeError(f"{kind}(judge_on_full_input=False): expected (value to judge, input...), "
                        f"got {value!r}")
    return value[0], value[1] if len(value) == 2 else package(value[1:])


class FlowBase(ModuleBase):
    """Base of the flows; subclasses implement ``_run(value, **kwargs)``.

    ``post_action``: a callable run on the output (its result is ignored).
    ``auto_capture=True``: the variables a ``with`` block defines become its steps.
    Raises ``TypeError`` for a step that is not callable, ``ValueError`` for a duplicate
    step name or for calling a flow that has no steps.
    """

    _kind = "flow"

    def __init__(self, *steps: Any, post_action: Callable[..., Any] | None = None,
                 auto_capture: bool = False, return_trace: bool = False, name: str | None = None,
                 **named: Any) -> None:
        super().__init__(return_trace=return_trace, name=name)
        object.__setattr__(self, "_auto_capture", bool(auto_capture))
        object.__setattr__(self, "_known_names", None)
        object.__setattr__(self, "_flow_id", f"{type(self).__name__}-{next(_ids)}")
        object.__setattr__(self, "_items", [])
        object.__setattr__(self, "_item_names", [])
        object.__setattr__(self, "_capturing", False)
        object.__setattr__(self, "_frame", None)
        if len(steps) == 1 and isinstance(steps[0], (list, tuple)) and not isinstance(steps[0], package):
            steps = tuple(steps[0])
        for step in steps:
            self._add(None, step)
        for key, step in named.items():
            self._add(key, step)
        if post_action is not None and not callable(post_action := _instantiate(post_action)):
            raise TypeError(f"{self._kind}: post_action must be callable, got {post_action!r}")
        object.__setattr__(self, "post_action", post_action)

    # --- building -------------------------------------------------------------------
    def _add(self, key: str | None, step: Any) -> None:
        step = _instantiate(step)
        if not callable(step):
            where = f"step {key!r}" if key else f"step {len(self._items)}"
            raise TypeError(f"{self._kind}: {where} ({step!r}) is not callable; pass a module "
                            f"or a function")
        target = step._f if isinstance(step, bind) else step
        if key is not None:
            if key in self._item_names:
                raise ValueError(f"{self._kind}: two steps are named {key!r}; step names must be "
                                 f"unique within one flow")
            if isinstance(target, ModuleBase) and target._attr_name is None:
                object.__setattr__(target, "_attr_name", key)
        if isinstance(step, types.FunctionType) and any(s is step for s in self._items):
            step = _FuncWrap(step)
        self._items.append(step)
        self._item_names.append(key)
        # A nested `with pipeline() as p1.p2:` lets the block say `p2.x = ...` (LazyLLM's
        # spelling): the name is set in the caller's namespace unless it holds a non-flow.
        # Only module-level code can get names this way (Python >= 3.13: functions too).
        if key and isinstance(target, FlowBase) and self._frame is not None:
            current = self._frame.f_locals.get(key, None)
            if current is None or isinstance(current, (FlowBase, bind)):
                self._frame.f_locals[key] = step

    def _enter(self, frame: Any) -> FlowBase:
        if self._items:
            raise ValueError(f"{self._kind}: a flow given steps as arguments cannot also take "
                             f"steps in a `with` block; write `with {self._kind}() as p:`")
        object.__setattr__(self, "_capturing", True)
        object.__setattr__(self, "_frame", frame)
        if self._auto_capture:
            object.__setattr__(self, "_known_names", set(frame.f_locals))
        return self

    def __enter__(self) -> FlowBase:  # noqa: PYI034 - the flow _enter opens, not always self
        return self._enter(sys._getframe(1))

    def __exit__(self, *exc: object) -> Literal[False]:
        if self._auto_capture and exc[0] is None:
            # `auto_capture=True`: the variables the block newly defined are the steps.
            for key, value in list(self._frame.f_locals.items()):
                target = value._f if isinstance(value, bind) else value
                if key not in self._known_names and target is not self and key not in self._item_names:
                    self._add(key, value)
        object.__setattr__(self, "_capturing", False)
        object.__setattr__(self, "_frame", None)
        self._finish()
        return False

    def _finish(self) -> None:
        """Called when a ``with`` block ends; flows that normalise their steps override it."""

    def __setattr__(self, key: str, value: Any) -> None:
        if not key.startswith("_") and self.__dict__.get("_capturing"):
            self._add(key, value)
        elif key in self.__dict__.get("_item_names", ()):
            raise AttributeError(f"{self._kind}: step {key!r} can be set only inside the flow's "
                                 f"`with` block")
        else:
            super().__setattr__(key, value)

    def __getattr__(self, key: str) -> Any:
        names = self.__dict__.get("_item_names", ())
        if key in names:
            return self._items[names.index(key)]
        raise AttributeError(f"{type(self).__name__} has no attribute or step {key!r}"
                             + (f"; steps: {', '.join(n for n in names if n)}" if any(names) else ""))

    @property
    def steps(self) -> list[Any]:
        """The steps, in order."""
        return list(self._items)

    def bind(self, *args: Any, **kwargs: Any) -> bind:
        """Return ``bind(self, *args, **kwargs)``."""
        return bind(self, *args, **kwargs)

    # --- running --------------------------------------------------------------------
    def _step_ref(self, value: Any) -> _FlowArg | None:
        """A step of this flow bound as an argument stands for its output (pipelines)."""
        return None

    def _invoke(self, step: Any, value: Any, **kwargs: Any) -> Any:
        """Call one step with ``value``: unpacked when a package and the step is no flow."""
        if isinstance(step, bind):
            args = tuple(value) if isinstance(value, package) else (value,)
            return step._call(args, kwargs, self)
        if isinstance(value, package) and not isinstance(step, FlowBase):
            return step(*value, **kwargs)
        return step(value, **kwargs)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if not self._items:
            raise ValueError(f"{self._kind} has no steps: give them as arguments or assign them "
                             f"in `with {self._kind}() as p:`")
        value = args[0] if len(args) == 1 else package(args)
        output = self._run(value, **kwargs)
        if self.post_action is not None:
            self._invoke(self.post_action, output)
        return output

    def _run(self, value: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def __repr__(self) -> str:
        steps = ", ".join(f"{n}={step_name(s)}" if n else step_name(s)
                          for n, s in zip(self._item_names, self._items))
        return f"<{self._kind} {self.name!r}: {steps}>"
