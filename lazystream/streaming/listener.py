"""``StreamListener``: which output field of which predictor to stream.

A listener is configuration only. ``streamify`` resolves it against the program once
(``resolve``) and gives every call its own fresh field state, so a second call and
concurrent calls each stream in full.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["StreamListener"]


class StreamListener:
    """Stream output field ``signature_field_name``.

    * ``predict`` — the predictor that has the field; needed only when several predictors
      of the program have a field of that name (then pass ``predict_name`` too);
    * ``predict_name`` — the name the chunks carry (default: the predictor's name in
      ``program.named_predictors()``);
    * ``allow_reuse`` — stream every call of the predictor (a predictor called in a loop),
      not only the first one.

    A field of any type streams: a ``str`` field its text, any other field the text the
    model writes for it (``9``, ``["a", "b"]``), as DSPy 3 does; the ``Prediction`` holds the
    typed value.

    Raises ``ValueError`` for an empty field name; ``streamify`` raises ``ValueError`` for
    a field no predictor has (listing the fields) or one several have.
    """

    def __init__(self, signature_field_name: str, predict: Any = None,
                 predict_name: str | None = None, allow_reuse: bool = False) -> None:
        if not isinstance(signature_field_name, str) or not signature_field_name:
            raise ValueError(f"StreamListener: signature_field_name must be a field name, got "
                             f"{signature_field_name!r}")
        if predict is not None and not hasattr(predict, "signature"):
            raise TypeError(f"StreamListener: predict must be a predictor (Predict, or "
                            f"ChainOfThought(...).predict), got {predict!r}")
        if predict_name is not None and (not isinstance(predict_name, str) or not predict_name):
            raise ValueError(f"StreamListener: predict_name must be a non-empty string, got "
                             f"{predict_name!r}")
        self.signature_field_name = signature_field_name
        self.predict = predict
        self.predict_name = predict_name
        self.allow_reuse = bool(allow_reuse)

    def __repr__(self) -> str:
        return (f"StreamListener(signature_field_name={self.signature_field_name!r}, "
                f"predict_name={self.predict_name!r}, allow_reuse={self.allow_reuse})")


@dataclass(frozen=True)
class Target:
    """A listener resolved against a program: the predictor key events carry, and the label."""

    key: str          # the predictor's name in the run (what lm_start events carry)
    label: str        # the predict_name chunks carry
    field: str
    allow_reuse: bool


def predictor_names(program: Any) -> list[tuple[str, Any]]:
    """Return ``program.named_predictors()``, or ``[]`` for a program without predictors."""
    named = getattr(program, "named_predictors", None)
    return list(named()) if callable(named) else []


def resolve(program: Any, listeners: list[StreamListener]) -> tuple[list[Target], dict[int, str]]:
    """Return the listeners' targets and the ``id(predictor) -> name`` map of the run.

    Raises ``ValueError`` / ``TypeError`` as ``StreamListener`` documents.
    """
    named = predictor_names(program)
    names = {id(p): n for n, p in named}
    targets = []
    for listener in listeners:
        if not isinstance(listener, StreamListener):
            raise TypeError(f"streamify: stream_listeners must hold StreamListener objects, "
                            f"got {listener!r}")
        field = listener.signature_field_name
        key: str | None
        if listener.predict is None:
            owners = [(n, p) for n, p in named if field in p.signature.output_fields]
            if not owners:
                fields = [f"{n}.{f}" for n, p in named for f in p.signature.output_fields]
                raise ValueError(f"StreamListener: {field!r} is not an output field of any "
                                 f"predictor of {program!r}; output fields: "
                                 f"{', '.join(fields) or '(none: the program has no predictors)'}")
            if len(owners) > 1:
                first = owners[0][0]
                raise ValueError(
                    f"StreamListener: {field!r} is an output field of several predictors "
                    f"({', '.join(n for n, _ in owners)}); pass predict= and predict_name= to "
                    f"choose, e.g. StreamListener({field!r}, predict=program.{first}, "
                    f"predict_name={first!r})")
            key, predictor = owners[0]
        else:
            predictor = listener.predict
            key = names.get(id(predictor)) or listener.predict_name
            if key is None:
                raise ValueError(f"StreamListener({field!r}): {predictor!r} is not among the "
                                 f"predictors of {program!r}; pass predict_name= to name it")
            names.setdefault(id(predictor), key)
            if field not in predictor.signature.output_fields:
                raise ValueError(f"StreamListener: {field!r} is not an output field of {key!r}; "
                                 f"fields: {', '.join(predictor.signature.output_fields)}")
        targets.append(Target(key, listener.predict_name or key, field, listener.allow_reuse))
    return targets, names
