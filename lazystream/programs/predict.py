"""``Predict`` and ``ChainOfThought``: predictors that fill a signature's outputs with an LM."""
from __future__ import annotations

import os
import sys
import warnings
from typing import Any

from ..queue import emit
from ..session import ns_scope
from ._run import current_run, token_run
from .adapters import Adapter, ChatAdapter
from .module import Module
from .prediction import Prediction
from .settings import settings
from .signature import OutputField, Signature, ensure_signature

__all__ = ["Predict", "ChainOfThought"]

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _user_stacklevel() -> int:
    """The ``stacklevel`` that points a warning at the first frame outside lazystream."""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame, level = frame.f_back, level + 1
    return level


class Predict(Module):
    """Ask the LM for the output fields of ``signature``: ``Predict("question -> answer")``.

    Call it with the inputs as keywords; it returns a ``Prediction``. The LM is the one
    passed as ``lm=`` to the call, else ``self.lm``, else ``settings.lm``; the adapter is
    ``settings.adapter``, else ``ChatAdapter()``. Extra ``**config`` (``temperature``, …)
    goes to the LM request.

    Raises ``RuntimeError`` when no LM is configured, ``AdapterParseError`` when the reply
    lacks an output field. An input missing from the call is left out of the prompt, with
    a warning (as DSPy does).
    """

    _is_predictor = True

    def __init__(self, signature: str | type[Signature], **config: Any) -> None:
        super().__init__()
        self.signature = ensure_signature(signature)
        self.config = config
        self.lm: Any = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.signature.signature})"

    def forward(self, *args: Any, **kwargs: Any) -> Prediction:
        """Return the ``Prediction`` of the output fields for the given inputs."""
        sig = self.signature
        if args:
            raise TypeError(f"{self!r} takes its inputs as keywords, e.g. "
                            f"{', '.join(f'{n}=...' for n in sig.input_fields) or 'no inputs'}; "
                            f"got {len(args)} positional argument(s)")
        lm = kwargs.pop("lm", None) or self.lm or settings.lm
        config = {**self.config, **kwargs.pop("config", {})}
        if lm is None:
            raise RuntimeError(f"{self!r}: no LM is configured; call lazystream.configure("
                               "lm=lazystream.LM('openai/gpt-4o-mini')) or pass lm=")
        unknown = [k for k in kwargs if k not in sig.input_fields]
        if unknown:
            warnings.warn(f"{self!r}: {', '.join(unknown)} {'is' if len(unknown) == 1 else 'are'}"
                          f" not input field(s) of the signature and are ignored; inputs: "
                          f"{', '.join(sig.input_fields)}", stacklevel=_user_stacklevel())
        missing = [k for k in sig.input_fields if k not in kwargs]
        if missing:
            warnings.warn(f"{self!r}: input field(s) {', '.join(missing)} not given; they are "
                          "left out of the prompt", stacklevel=_user_stacklevel())
        inputs = {k: v for k, v in kwargs.items() if k in sig.input_fields}
        adapter: Adapter = settings.adapter or ChatAdapter()
        messages = adapter.format(sig, inputs)
        text = self._complete(lm, messages, config, adapter)
        return Prediction(**adapter.parse(sig, text))

    def _complete(self, lm: Any, messages: list[dict[str, str]], config: dict[str, Any],
                  adapter: Adapter) -> str:
        run = current_run.get()
        if run is None:
            return lm(messages=messages, **config)[0]
        name = run.names.get(id(self))
        call = run.new_call()
        with ns_scope(call):
            emit("lm_start", {"call": call, "predictor": name, "adapter": adapter.name,
                              "fields": list(self.signature.output_fields)})
            token = token_run.set(run if name in run.wanted else None)
            ok = False
            try:
                text = lm(messages=messages, **config)[0]
                ok = True
            finally:
                token_run.reset(token)
                emit("lm_end", {"call": call, "ok": ok})
        return text


class ChainOfThought(Module):
    """A ``Predict`` whose outputs start with a ``reasoning`` field; held as ``.predict``."""

    def __init__(self, signature: str | type[Signature], rationale_field: Any = None,
                 rationale_field_type: Any = str, **config: Any) -> None:
        super().__init__()
        sig = ensure_signature(signature)
        field = rationale_field if rationale_field is not None else OutputField(
            desc="Think step by step in order to produce the outputs.")
        self.predict = Predict(sig.prepend("reasoning", field, rationale_field_type), **config)

    def forward(self, **kwargs: Any) -> Prediction:
        """Return the ``Prediction``, ``reasoning`` first."""
        return self.predict(**kwargs)

    def __repr__(self) -> str:
        return f"ChainOfThought({self.predict.signature.signature})"
