"""``ifs`` (if/else) and ``switch`` (cases): run one of several paths on the input.

The chosen path writes under its own lineage: ``true_path`` / ``false_path`` for ``ifs``,
``case<i>`` (or the case's name) for ``switch``, so a reader sees which path answered.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from ..session import ns_scope
from ._base import FlowBase, split_judged
from .package import package

__all__ = ["ifs", "switch"]


def _takes_no_arguments(fn: Callable[..., Any]) -> bool:
    try:
        return not inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


class ifs(FlowBase):
    """``ifs(cond, tpath, fpath)(x)`` is ``tpath(x)`` if ``cond(x)`` else ``fpath(x)``.

    ``cond`` may be a bool, or a callable of the input (or of nothing).
    """

    _kind = "ifs"

    def __init__(self, cond: Any, tpath: Callable[..., Any], fpath: Callable[..., Any], *,
                 post_action: Callable[..., Any] | None = None, return_trace: bool = False,
                 name: str | None = None) -> None:
        if not isinstance(cond, bool) and not callable(cond):
            raise TypeError(f"ifs: cond must be a bool or a callable of the input, got {cond!r}")
        super().__init__(tpath, fpath, post_action=post_action, return_trace=return_trace,
                         name=name)
        object.__setattr__(self, "_cond", cond)

    def _run(self, value: Any, **kwargs: Any) -> Any:
        cond = self._cond
        if isinstance(cond, bool):
            flag = cond
        elif _takes_no_arguments(cond):
            flag = cond()
        else:
            flag = self._invoke(cond, value)
        tpath, fpath = self._items
        with ns_scope("true_path" if flag else "false_path"):
            return self._invoke(tpath if flag else fpath, value, **kwargs)


class switch(FlowBase):
    """Run the path of the first case that matches; return its output.

    ``switch(cond1, path1, cond2, path2, ..., 'default', path)`` or ``switch({cond: path})``,
    or ``with switch() as sw: sw.case[cond::path]; sw.case(cond, path); sw.case[cond, path]``.
    A case matches when its condition is a callable returning ``True`` for the value, equals
    the value, or is ``'default'``. The value is the input, ``conversion(input)`` if given,
    or — with ``judge_on_full_input=False`` — the first element of ``(value, input...)``.
    Raises ``ValueError`` naming the value when no case matches.
    """

    _kind = "switch"

    def __init__(self, *cases: Any, conversion: Callable[..., Any] | None = None,
                 post_action: Callable[..., Any] | None = None, judge_on_full_input: bool = True,
                 return_trace: bool = False, name: str | None = None) -> None:
        if len(cases) == 1 and isinstance(cases[0], dict):
            conds, paths = list(cases[0]), list(cases[0].values())
        else:
            if len(cases) % 2:
                raise TypeError(f"switch: give conditions and paths in pairs (cond1, path1, "
                                f"cond2, path2, ...), got {len(cases)} arguments")
            conds, paths = list(cases[0::2]), list(cases[1::2])
        super().__init__(*paths, post_action=post_action, return_trace=return_trace, name=name)
        if conversion is not None and not callable(conversion):
            raise TypeError(f"switch: conversion must be callable, got {conversion!r}")
        object.__setattr__(self, "_conds", conds)
        object.__setattr__(self, "_conversion", conversion)
        object.__setattr__(self, "_judge_on_full_input", bool(judge_on_full_input))

    @property
    def case(self) -> _Case:
        """Add a case: ``sw.case[cond::path]``, ``sw.case[cond, path]`` or ``sw.case(cond, path)``."""
        return _Case(self)

    def _add_case(self, cond: Any, path: Any) -> None:
        self._add(None, path)
        self._conds.append(cond)

    def _run(self, value: Any, **kwargs: Any) -> Any:
        judged = value
        if not self._judge_on_full_input:
            judged, value = split_judged("switch", value)
        if self._conversion is not None:
            judged = self._invoke(self._conversion, judged)
        for i, (cond, path) in enumerate(zip(self._conds, self._items)):
            if self._matches(cond, judged):
                with ns_scope(self._item_names[i] or f"case{i}"):
                    return self._invoke(path, value, **kwargs)
        raise ValueError(f"switch: no case matches {judged!r} (conditions: "
                         f"{', '.join(map(_describe, self._conds))}); add a 'default' case")

    def _matches(self, cond: Any, judged: Any) -> bool:
        if isinstance(cond, str) and cond == "default":
            return True
        if callable(cond):
            return self._invoke(cond, judged) is True
        return judged == cond or judged == package((cond,))


def _describe(cond: Any) -> str:
    return getattr(cond, "__name__", None) or repr(cond)


class _Case:
    """The ``switch.case`` helper of ``with switch() as sw:`` blocks."""

    def __init__(self, sw: switch) -> None:
        self._sw = sw

    def __call__(self, cond: Any, path: Callable[..., Any]) -> None:
        self._sw._add_case(cond, path)

    def __getitem__(self, key: Any) -> None:
        if isinstance(key, slice) and key.start is not None:
            path = key.step if key.step is not None else key.stop
            if callable(path) and (key.step is None or key.stop is None):
                return self._sw._add_case(key.start, path)
        elif isinstance(key, tuple) and len(key) == 2 and callable(key[1]):
            return self._sw._add_case(key[0], key[1])
        raise TypeError(f"switch.case: write case[cond::path], case[cond, path] or "
                        f"case(cond, path), got case[{key!r}]")
