"""``pipeline`` (steps one after another) and ``loop`` (a pipeline run again and again).

Each step gets the previous step's output; the pipeline returns the last. Keyword
arguments of the call go to the first step only. While a pipeline runs, its input and
each step's output can be bound into later steps (``bind(f, p.input, _0, p.f2)``).
"""
from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from ..session import ns_scope
from ._base import FlowBase, split_judged
from .bind import _FlowArg, _publishing

__all__ = ["loop", "pipeline"]


class pipeline(FlowBase):
    """Feed the input to the first step and each step's output to the next; return the last.

    ``p.input`` / ``p.kwargs`` / ``p.output(step)`` name the running pipeline's values for
    ``bind``.
    """

    _kind = "pipeline"

    @property
    def input(self) -> _FlowArg:
        """The running pipeline's input, for ``bind`` (index it: ``p.input[0]``)."""
        return _FlowArg(self, "input")

    @property
    def kwargs(self) -> _FlowArg:
        """The running pipeline's keyword arguments, for ``bind``."""
        return _FlowArg(self, "kwargs")

    def output(self, step: Any, unpack: bool = False) -> _FlowArg:
        """The output of ``step`` (the step or its name) in the running pipeline, for ``bind``."""
        return _FlowArg(self, self._step_id(step), unpack=unpack)

    def _step_id(self, step: Any) -> int:
        if isinstance(step, str):
            if step not in self._item_names:
                raise ValueError(f"pipeline: no step named {step!r}; steps: "
                                 f"{', '.join(n for n in self._item_names if n) or 'none named'}")
            return self._item_names.index(step)
        for i, item in enumerate(self._items):
            if item is step:
                return i
        raise ValueError(f"pipeline: {step!r} is not a step of {self!r}")

    def _step_ref(self, value: Any) -> _FlowArg | None:
        for i, item in enumerate(self._items):
            if item is value:
                return _FlowArg(self, i)
        return None

    def _run(self, value: Any, **kwargs: Any) -> Any:
        source: dict[Any, Any] = {"input": value, "kwargs": dict(kwargs)}
        with _publishing(self._flow_id, source):
            return self._steps_once(value, source, kwargs)

    def _steps_once(self, value: Any, source: dict[Any, Any], kwargs: dict[str, Any]) -> Any:
        for i, step in enumerate(self._items):
            value = self._invoke(step, value, **kwargs)
            kwargs = {}
            source[i] = value
        return value


class loop(pipeline):
    """Run the steps as a pipeline, feeding the output back in, until ``stop_condition``
    (called with the output) is true or ``count`` rounds ran; return the last output.

    ``judge_on_full_input=False``: the steps return ``(flag_value, output...)`` and only
    ``flag_value`` goes to ``stop_condition``. Each round writes under ``iteration<i>`` in
    ``ns``. Raises ``ValueError`` when neither a stop condition nor a count bounds the loop.
    """

    _kind = "loop"

    def __init__(self, *steps: Any, stop_condition: Callable[[Any], Any] | None = None,
                 count: int = sys.maxsize, post_action: Callable[..., Any] | None = None,
                 judge_on_full_input: bool = True, return_trace: bool = False,
                 name: str | None = None, **named: Any) -> None:
        super().__init__(*steps, post_action=post_action, return_trace=return_trace, name=name,
                         **named)
        if stop_condition is not None and not callable(stop_condition):
            raise TypeError(f"loop: stop_condition must be callable, got {stop_condition!r}")
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"loop: count must be an int >= 1 (the most rounds), got {count!r}")
        if stop_condition is None and count == sys.maxsize:
            raise ValueError("loop: give stop_condition=... or count=...; without either the "
                             "loop would never end")
        object.__setattr__(self, "_stop", stop_condition)
        object.__setattr__(self, "_count", count)
        object.__setattr__(self, "_judge_on_full_input", bool(judge_on_full_input))

    def _run(self, value: Any, **kwargs: Any) -> Any:
        for i in range(self._count):
            source: dict[Any, Any] = {"input": value, "kwargs": dict(kwargs)}
            with _publishing(self._flow_id, source), ns_scope(f"iteration{i}"):
                value = self._steps_once(value, source, kwargs)
                kwargs = {}
                flag = value
                if not self._judge_on_full_input:
                    flag, value = split_judged("loop", value)
                if self._stop is not None and self._invoke(self._stop, flag):
                    break
        return value
