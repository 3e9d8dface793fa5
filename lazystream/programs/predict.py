"""``Predict`` and ``ChainOfThought``: predictors that fill a signature's outputs with an LM."""
from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import os
import sys
import warnings
from collections.abc import Iterator
from types import FrameType
from typing import Any

from ..queue import emit
from ..session import ns_scope
from ._run import current_run, token_run
from .adapters import Adapter, AdapterParseError, ChatAdapter, JSONAdapter
from .callback import call_with_callbacks
from .module import Module
from .prediction import Prediction
from .settings import lm_string_error, settings
from .signature import MISSING, OutputField, Signature, ensure_signature

__all__ = ["ChainOfThought", "Predict"]

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _user_stacklevel() -> int:
    """The ``stacklevel`` that points a warning at the first frame outside lazystream."""
    frame: FrameType | None = sys._getframe(1)
    level = 1
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame, level = frame.f_back, level + 1
    return level


class Predict(Module):
    """Ask the LM for the output fields of ``signature``: ``Predict("question -> answer")``.

    Call it with the inputs as keywords (``await predict.acall(...)`` in async code); it
    returns a ``Prediction``. The LM is the one passed as ``lm=`` to the call, else
    ``self.lm``, else ``settings.lm``; the adapter is ``settings.adapter``, else
    ``ChatAdapter()``. Extra ``**config`` (``temperature``, ``rollout_id``, …) goes to the LM
    request; ``callbacks=`` are this predictor's own ``BaseCallback`` handlers.

    Raises DSPy's ``ValueError`` when no LM is configured (or one given as a string) and
    for positional inputs; ``AdapterParseError`` when the reply lacks an output field (after
    the ``ChatAdapter``'s fallback to ``JSONAdapter``). An input missing from the call takes
    its ``InputField(default=...)``, else is left out of the prompt with a warning (as DSPy
    does).
    """

    _is_predictor = True

    def __init__(self, signature: str | type[Signature], callbacks: list[Any] | None = None,
                 **config: Any) -> None:
        super().__init__(callbacks=callbacks)
        self.signature = ensure_signature(signature)
        self.config = config
        self.lm: Any = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.signature.signature})"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if args:
            raise ValueError(self._positional_error())
        return super().__call__(**kwargs)

    async def acall(self, *args: Any, **kwargs: Any) -> Any:
        """Await the ``Prediction`` (the LM is called with ``openai.AsyncOpenAI``)."""
        if args:
            raise ValueError(self._positional_error())
        return await super().acall(**kwargs)

    def _positional_error(self) -> str:
        names = list(self.signature.input_fields)
        first = names[0] if names else "input"
        return ("Positional arguments are not allowed when calling `dspy.Predict`, must use "
                f"keyword arguments that match your signature input fields: '{', '.join(names)}'."
                f" For example: `predict({first}=input_value, ...)`.")

    def forward(self, **kwargs: Any) -> Prediction:
        """Return the ``Prediction`` of the output fields for the given inputs."""
        lm, config, inputs, adapter = self._prepare(kwargs)
        try:
            fields = self._attempt(adapter, lm, config, inputs, fallback=False)
        except AdapterParseError as e:
            if not _falls_back(adapter):
                raise
            try:
                fields = self._attempt(JSONAdapter(), lm, config, inputs, fallback=True)
            except AdapterParseError as json_error:
                raise json_error from e
        return Prediction(**fields)

    async def aforward(self, **kwargs: Any) -> Prediction:
        """The async ``forward``: the same prompt, fallback and result."""
        lm, config, inputs, adapter = self._prepare(kwargs)
        try:
            fields = await self._aattempt(adapter, lm, config, inputs, fallback=False)
        except AdapterParseError as e:
            if not _falls_back(adapter):
                raise
            try:
                fields = await self._aattempt(JSONAdapter(), lm, config, inputs, fallback=True)
            except AdapterParseError as json_error:
                raise json_error from e
        return Prediction(**fields)

    def _prepare(self, kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any], dict[str, Any], Adapter]:
        sig = self.signature
        lm = kwargs.pop("lm", None) or self.lm or settings.lm
        config = {**self.config, **kwargs.pop("config", {})}
        if lm is None:
            raise ValueError(
                "No LM is loaded. Please configure the LM using `dspy.configure(lm=dspy.LM(...))`."
                " e.g, `dspy.configure(lm=dspy.LM('openai/gpt-4o-mini'))`")
        if isinstance(lm, str):
            raise lm_string_error(lm)
        if not callable(lm):
            raise ValueError(f"LM must be an instance of `dspy.BaseLM`, not {type(lm)}. "  # noqa: TRY004 - callers handle ValueError for every bad value
                             f"Received `lm={lm!r}`.")
        for name, field in sig.input_fields.items():
            if name not in kwargs and field.default is not MISSING:
                kwargs[name] = field.default
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
        return lm, config, inputs, adapter

    def _format(self, adapter: Adapter, inputs: dict[str, Any]) -> list[dict[str, str]]:
        return call_with_callbacks(
            adapter, "adapter_format", {"signature": self.signature, "demos": [], "inputs": inputs},
            lambda: _format(adapter, self.signature, inputs))

    def _parse(self, adapter: Adapter, text: str) -> dict[str, Any]:
        return call_with_callbacks(
            adapter, "adapter_parse", {"signature": self.signature, "completion": text},
            lambda: adapter.parse(self.signature, text))

    def _attempt(self, adapter: Adapter, lm: Any, config: dict[str, Any],
                 inputs: dict[str, Any], fallback: bool) -> dict[str, Any]:
        messages = self._format(adapter, inputs)
        with self._lm_call(adapter, fallback):
            text = lm(messages=messages, **config)[0]
        return self._parse(adapter, text)

    async def _aattempt(self, adapter: Adapter, lm: Any, config: dict[str, Any],
                        inputs: dict[str, Any], fallback: bool) -> dict[str, Any]:
        messages = self._format(adapter, inputs)
        with self._lm_call(adapter, fallback):
            acall = getattr(lm, "acall", None)
            if acall is not None:
                outputs = await acall(messages=messages, **config)
            else:  # a plain callable LM: keep the loop free while it runs
                context = contextvars.copy_context()
                outputs = await asyncio.get_running_loop().run_in_executor(
                    None, lambda: context.run(lm, messages=messages, **config))
        return self._parse(adapter, outputs[0])

    @contextlib.contextmanager
    def _lm_call(self, adapter: Adapter, fallback: bool) -> Iterator[None]:
        """Inside ``streamify``: tie the LM call to this predictor (``lm_start``/``lm_end``)."""
        run = current_run.get()
        if run is None:
            yield
            return
        name = run.names.get(id(self))
        call = run.new_call()
        with ns_scope(call):
            emit("lm_start", {"call": call, "predictor": name, "adapter": adapter.name,
                              "fields": list(self.signature.output_fields),
                              "fallback": fallback})
            token = token_run.set(run if name in run.wanted else None)
            ok = False
            try:
                yield
                ok = True
            finally:
                token_run.reset(token)
                emit("lm_end", {"call": call, "ok": ok})


def _format(adapter: Adapter, signature: type[Signature], inputs: dict[str, Any]) -> Any:
    """Call ``adapter.format``: lazystream's ``(signature, inputs)``, or DSPy's
    ``(signature, demos, inputs)`` for a subclass written for DSPy (no demos here)."""
    try:
        params = inspect.signature(adapter.format).parameters
    except (TypeError, ValueError):
        return adapter.format(signature, inputs)
    if "demos" in params:
        return adapter.format(signature, [], inputs)
    return adapter.format(signature, inputs)


def _falls_back(adapter: Adapter) -> bool:
    """True for a ChatAdapter (or XMLAdapter) whose parse failures retry with JSONAdapter."""
    return isinstance(adapter, ChatAdapter) and getattr(adapter, "use_json_adapter_fallback", True)


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

    async def aforward(self, **kwargs: Any) -> Prediction:
        """The async ``forward``."""
        return await self.predict.acall(**kwargs)

    def __repr__(self) -> str:
        return f"ChainOfThought({self.predict.signature.signature})"
