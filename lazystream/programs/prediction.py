"""``Prediction``: the output fields of a predictor, readable by attribute and by key."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

__all__ = ["Prediction"]


class Prediction:
    """The fields a program produced: ``pred.answer`` and ``pred["answer"]`` are the same.

    Its repr lists one field per line, as DSPy prints it::

        Prediction(
            answer='To get to the other side!'
        )
    """

    __slots__ = ("_lm_usage", "_store")

    def __init__(self, **fields: Any) -> None:
        object.__setattr__(self, "_store", dict(fields))
        object.__setattr__(self, "_lm_usage", None)

    def get_lm_usage(self) -> dict[str, dict[str, int]] | None:
        """With ``configure(track_usage=True)``: ``{lm model: {"prompt_tokens",
        "completion_tokens", "total_tokens"}}`` over the program's LM calls; else ``None``."""
        return self._lm_usage

    def set_lm_usage(self, usage: dict[str, dict[str, int]] | None) -> None:
        """Attach the LM usage (the program call does, as DSPy's does)."""
        object.__setattr__(self, "_lm_usage", usage)

    def __getattr__(self, name: str) -> Any:
        store = object.__getattribute__(self, "_store")
        try:
            return store[name]
        except KeyError:
            raise AttributeError(f"Prediction has no field {name!r}; fields: "
                                 f"{', '.join(store) or '(none)'}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        self._store[name] = value

    def __getitem__(self, key: str) -> Any:
        try:
            return self._store[key]
        except KeyError:
            raise KeyError(f"Prediction has no field {key!r}; fields: "
                           f"{', '.join(self._store) or '(none)'}") from None

    def __setitem__(self, key: str, value: Any) -> None:
        self._store[key] = value

    def __contains__(self, key: object) -> bool:
        return key in self._store

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._store))

    def __len__(self) -> int:
        return len(self._store)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Prediction) and self._store == other._store

    __hash__ = None  # type: ignore[assignment]  # mutable, like a dict

    def __getstate__(self) -> dict[str, Any]:
        return dict(self._store)

    def __setstate__(self, state: dict[str, Any]) -> None:
        object.__setattr__(self, "_store", dict(state))
        object.__setattr__(self, "_lm_usage", None)

    def get(self, key: str, default: Any = None) -> Any:
        """Return field ``key``, or ``default`` when it is absent."""
        return self._store.get(key, default)

    def keys(self, include_dspy: bool = False) -> list[str]:
        """Return the field names, in order (``dspy_*`` names only with ``include_dspy``)."""
        return [k for k, _ in self.items(include_dspy)]

    def values(self, include_dspy: bool = False) -> list[Any]:
        """Return the field values, in order (see ``keys``)."""
        return [v for _, v in self.items(include_dspy)]

    def items(self, include_dspy: bool = False) -> list[tuple[str, Any]]:
        """Return ``(name, value)`` pairs, in order; as in DSPy, fields named ``dspy_*`` are
        internal and left out unless ``include_dspy=True``."""
        return [(k, v) for k, v in self._store.items() if include_dspy or not k.startswith("dspy_")]

    def toDict(self) -> dict[str, Any]:
        """Return a copy of the fields as a plain dict."""
        return dict(self._store)

    def __repr__(self) -> str:
        body = ",\n    ".join(f"{k}={v!r}" for k, v in self._store.items())
        return f"Prediction(\n    {body}\n)"

    __str__ = __repr__
