"""``Module``: the base class of programs — a ``ModuleBase`` that knows its predictors.

``program(...)`` runs ``forward``; ``await program.acall(...)`` runs ``aforward`` (or, for a
program that has none, ``forward`` in a worker thread). Both fire DSPy's callbacks
(``settings.callbacks`` and the program's own ``callbacks``).
"""
from __future__ import annotations

from typing import Any

from ..module import ModuleBase
from ._async import acall_module, forward_in_thread
from ._usage import tracking
from .callback import acall_with_callbacks, call_with_callbacks
from .settings import settings

__all__ = ["Module"]


def _with_usage(result: Any, tracker: Any) -> Any:
    """Attach the tracked LM usage to the program's ``Prediction`` (DSPy's track_usage)."""
    if tracker is not None and hasattr(result, "set_lm_usage"):
        result.set_lm_usage(tracker.totals())
    return result


class Module(ModuleBase):
    """Subclass it, assign predictors and submodules as attributes, define ``forward``
    (and, for native async, ``aforward``).

    ``named_predictors()`` names predictors exactly as DSPy does: ``self`` for a bare
    predictor, attribute paths (``predict1``, ``predict.predict``), and ``x[0]`` /
    ``x['k']`` for predictors held in lists and dicts.
    """

    _is_predictor = False  # Predict sets it; avoids importing predict.py here
    callbacks: list[Any] = []  # noqa: RUF012 - read-only class default; instances replace it

    def __init__(self, callbacks: list[Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.callbacks = list(callbacks or ())

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with tracking(settings.track_usage) as tracker:
            result = call_with_callbacks(self, "module", {"args": args, "kwargs": kwargs},
                                         lambda: ModuleBase.__call__(self, *args, **kwargs))
            return _with_usage(result, tracker)

    async def acall(self, *args: Any, **kwargs: Any) -> Any:
        """Await the program's output: ``aforward`` if it has one, else ``forward`` in a thread."""
        with tracking(settings.track_usage) as tracker:
            result = await acall_with_callbacks(
                self, "module", {"args": args, "kwargs": kwargs},
                lambda: acall_module(self, self.aforward, args, kwargs))
            return _with_usage(result, tracker)

    async def aforward(self, *args: Any, **kwargs: Any) -> Any:
        """The async ``forward``. By default, ``forward`` run in a worker thread."""
        return await forward_in_thread(self, args, kwargs)

    def named_predictors(self) -> list[tuple[str, Any]]:
        """Return ``(name, predictor)`` pairs, each predictor once, in attribute order."""
        seen: set[int] = set()
        found: list[tuple[str, Any]] = []

        def add(name: str, value: Any) -> None:
            if isinstance(value, Module) and value._is_predictor:
                if id(value) not in seen:
                    seen.add(id(value))
                    found.append((name, value))
            elif isinstance(value, Module):
                for sub_name, predictor in value.named_predictors():
                    add(f"{name}.{sub_name}", predictor)

        if self._is_predictor:
            add("self", self)
        for name, value in vars(self).items():
            if isinstance(value, Module):
                add(name, value)
            elif isinstance(value, (list, tuple)):
                for i, item in enumerate(value):
                    add(f"{name}[{i}]", item)
            elif isinstance(value, dict):
                for k, item in value.items():
                    add(f"{name}['{k}']", item)
        return found

    def predictors(self) -> list[Any]:
        """Return the predictors of ``named_predictors()``, without names."""
        return [p for _, p in self.named_predictors()]

    def set_lm(self, lm: Any) -> None:
        """Make every predictor of the program use ``lm``."""
        for predictor in self.predictors():
            predictor.lm = lm
