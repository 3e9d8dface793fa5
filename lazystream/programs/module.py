"""``Module``: the base class of programs — a ``ModuleBase`` that knows its predictors."""
from __future__ import annotations

from typing import Any

from ..module import ModuleBase

__all__ = ["Module"]


class Module(ModuleBase):
    """Subclass it, assign predictors and submodules as attributes, define ``forward``.

    ``named_predictors()`` names predictors exactly as DSPy does: ``self`` for a bare
    predictor, attribute paths (``predict1``, ``predict.predict``), and ``x[0]`` /
    ``x['k']`` for predictors held in lists and dicts.
    """

    _is_predictor = False  # Predict sets it; avoids importing predict.py here

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
