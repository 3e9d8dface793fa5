"""``bind``: fix some arguments of a step, or route earlier values of a pipeline into it.

``bind(f, 1, _0)`` calls ``f(1, x)`` with the step's input ``x``; ``_0`` … ``_9`` are the
positions of the step's inputs (a ``package`` input counts as several). ``f | bind(...)``
is the same. Inside ``with pipeline() as p:``, ``p.input`` (the pipeline's input, also
``p.input[0]`` / ``p.input['key']``), ``p.output('step')`` and a step itself (``p.f2``,
meaning its output in this run) may be bound too. Inputs no placeholder names are dropped.
"""
from __future__ import annotations

import contextlib
import itertools
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

__all__ = ["Placeholder", "bind", "placeholders"]

# Each running pipeline publishes {"input": ..., "kwargs": ..., <step id>: output} under its
# own id. The mapping is replaced (never mutated) per pipeline call, so concurrent branches
# and executor workers (which copy the context) each see their own callers' values.
_sources: ContextVar[dict[str, dict[Any, Any]]] = ContextVar(
    "lazystream_bind_sources", default={})  # noqa: B039 - never mutated, only replaced (above)


@contextlib.contextmanager
def _publishing(flow_id: str, source: dict[Any, Any]) -> Iterator[None]:
    token = _sources.set({**_sources.get(), flow_id: source})
    try:
        yield
    finally:
        _sources.reset(token)


class Placeholder:
    """``_i``: the i-th input of the bound step."""

    __slots__ = ("idx",)
    idx: int

    def __init__(self, idx: int) -> None:
        object.__setattr__(self, "idx", idx)

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError(f"placeholder _{self.idx} is read-only")

    def __repr__(self) -> str:
        return f"_{self.idx}"


placeholders = tuple(Placeholder(i) for i in range(10))


class _Unpack(tuple):
    """An ``output(..., unpack=True)`` value: spliced into the positional arguments."""


class _FlowArg:
    """A value of a running pipeline: its input, kwargs or a step's output, maybe indexed."""

    _NONE = object()

    def __init__(self, flow: Any, target: Any = "input", *, unpack: bool = False) -> None:
        self._flow, self._target, self._unpack = flow, target, unpack
        self._item: Any = self._NONE
        self._attr: Any = self._NONE

    def __getitem__(self, key: Any) -> _FlowArg:
        other = _FlowArg(self._flow, self._target, unpack=self._unpack)
        other._item = key
        return other

    def __getattr__(self, key: str) -> _FlowArg:
        if key.startswith("__"):
            raise AttributeError(key)
        other = _FlowArg(self._flow, self._target, unpack=self._unpack)
        other._attr = key
        return other

    def resolve(self) -> Any:
        source = _sources.get().get(self._flow._flow_id)
        if source is None:
            raise RuntimeError(
                f"bind: {self!r} is used outside a run of {self._flow!r}; bind a pipeline's "
                f"input or outputs only in steps of that pipeline (or flows nested in it)")
        if self._target not in source:
            raise RuntimeError(f"bind: {self!r} is not available yet: a step may bind only the "
                               f"outputs of steps before it")
        value = source[self._target]
        if self._item is not self._NONE:
            value = value[self._item]
        elif self._attr is not self._NONE:
            value = getattr(value, self._attr)
        if self._unpack and isinstance(value, tuple):
            value = _Unpack(value)
        return value

    def __repr__(self) -> str:
        what = "input" if self._target == "input" else f"output of step {self._target!r}"
        return f"<{self._flow.name} {what}>"


class bind:
    """``bind(f, *args, **kwargs)``: ``f`` with arguments fixed or routed (see the module doc).

    Calling it with the step's inputs returns ``f(*resolved args, **resolved kwargs)``.
    Raises ``IndexError`` naming the placeholder when the step got fewer inputs, and
    ``TypeError`` for a keyword bound twice.
    """

    _EMPTY = object()

    def __init__(self, __f: Any = _EMPTY, *args: Any, **kwargs: Any) -> None:  # noqa: PYI063 - LazyLLM's signature
        if isinstance(__f, type) and __f is not bind._EMPTY:
            __f = __f()
        object.__setattr__(self, "_f", __f)
        object.__setattr__(self, "_args", args)
        object.__setattr__(self, "_kwargs", kwargs)

    # `f | bind(...)`: the function goes in front of the bound arguments.
    def __ror__(self, f: Any) -> bind:
        if self._f is not bind._EMPTY:
            object.__setattr__(self, "_args", (self._f, *self._args))
        object.__setattr__(self, "_f", f)
        return self

    def _resolve(self, value: Any, args: tuple, flow: Any) -> Any:
        if isinstance(value, Placeholder):
            if value.idx >= len(args):
                raise IndexError(f"bind: placeholder _{value.idx} needs at least {value.idx + 1} "
                                 f"inputs, the step got {len(args)}: {args!r}")
            return args[value.idx]
        if flow is not None and not isinstance(value, _FlowArg):
            ref = flow._step_ref(value)
            if ref is not None:
                value = ref
        return value.resolve() if isinstance(value, _FlowArg) else value

    def _call(self, args: tuple, kwargs: dict[str, Any], flow: Any) -> Any:
        if self._f is bind._EMPTY or not callable(self._f):
            raise TypeError(f"bind: nothing callable to bind, got {self._f!r}; write "
                            f"bind(f, ...) or f | bind(...)")
        clash = set(kwargs) & set(self._kwargs)
        if clash:
            raise TypeError(f"bind: keyword(s) {sorted(clash)} are already bound")
        bound = args if not self._args else [self._resolve(a, args, flow) for a in self._args]
        bound = list(itertools.chain.from_iterable(
            a if isinstance(a, _Unpack) else (a,) for a in bound))
        fixed = {k: self._resolve(v, args, flow) for k, v in self._kwargs.items()}
        return self._f(*bound, **fixed, **kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._call(args, kwargs, None)

    # A bound flow still works as the flow: `with pipeline().bind(x=...) as p1.p2:`.
    def __enter__(self) -> bind:  # noqa: PYI034 - mirrors the bound flow's __enter__
        self._f._enter(sys._getframe(1))
        return self

    def __exit__(self, *exc: object) -> bool:
        return self._f.__exit__(*exc)

    def __getattr__(self, key: str) -> Any:
        return getattr(self._f, key)

    def __setattr__(self, key: str, value: Any) -> None:
        setattr(self._f, key, value)

    def bind(self, *args: Any, **kwargs: Any) -> bind:
        return bind(self, *args, **kwargs)

    def __repr__(self) -> str:
        fixed = [repr(a) for a in self._args] + [f"{k}={v!r}" for k, v in self._kwargs.items()]
        return f"bind({self._f!r}, {', '.join(fixed)})"
