"""``LM``: a chat model behind the official ``openai`` SDK, with a response cache.

Configuration, first match wins:

* model — the ``model`` argument; a litellm-style provider prefix for an OpenAI-compatible
  API (``openai/``, ``hosted_vllm/``, ``ollama_chat/``, …) is stripped:
  ``LM("openai/gpt-4o-mini")`` asks for ``gpt-4o-mini``;
* endpoint — ``api_base=`` / ``base_url=``, else ``OPENAI_BASE_URL`` (or ``OPENAI_API_BASE``),
  else the OpenAI API;
* key — ``api_key=``, else ``OPENAI_API_KEY``; a custom endpoint without a key gets the
  placeholder ``"unused"`` (local OpenAI-compatible servers ignore it).

The environment is read at the first call, not at construction, so a program may build
its LM before it knows where the model runs. To run the DSPy examples with no OpenAI key,
start the bundled engine and export ``OPENAI_BASE_URL`` (see ``docs/programs.md``).

Inside ``streamify``, when a listener wants the calling predictor, the reply is streamed
and each content delta is written as a ``text`` event (see ``lazystream.programs._run``);
otherwise one non-streaming request is made. A cache hit makes no request and writes no
tokens. ``await lm.acall(...)`` does the same with ``openai.AsyncOpenAI``.

DSPy's own keywords (``model_type``, ``callbacks``, ``provider``, ``finetuning_model``,
``launch_kwargs``, ``train_kwargs``, ``use_developer_role``, ``rollout_id``,
``cache_in_memory``) are kept on the LM and never sent to the model; ``rollout_id`` (on the
LM or per call) only makes a distinct cache entry, as in DSPy.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from ..llm._closer import http_client, stoppable, stream_closer
from ..module import ModuleBase
from ..queue import emit
from ..runs import current_run as current_lazy_run
from . import cache as _cache
from ._run import StreamRun, check_cancelled, current_run, token_run
from ._usage import LMCall, lm_call, usage_of
from .callback import acall_with_callbacks, call_with_callbacks

_log = logging.getLogger(__name__)
_MAX_RETRY_DELAY = 8.0

__all__ = ["LM"]

# Seconds to wait for the server to answer or send the next chunk; None waits for ever.
_DEFAULT_TIMEOUT = 120.0

_PROVIDERS = {"openai", "hosted_vllm", "vllm", "ollama", "ollama_chat", "lm_studio",
              "openrouter", "together_ai", "deepseek", "groq", "fireworks_ai", "text-completion-openai"}

# Request keywords that mean something to DSPy, not to the model API: never sent.
_LOCAL_KEYWORDS = ("rollout_id", "cache_in_memory", "use_developer_role")


class LM(ModuleBase):
    """A chat LM called through ``openai.OpenAI``; ``lm(prompt)`` or ``lm(messages=[...])``.

    ``timeout``: seconds to wait for the server to answer or send the next chunk (default
    120; ``None`` waits for ever). Returns a list with the reply text. Raises ``ValueError``
    when no API key can be found,
    and the ``openai`` SDK's exceptions (``APIConnectionError``, ``APIStatusError``, …) as
    they are.
    """

    def __init__(self, model: str, model_type: str = "chat", api_base: str | None = None, *,
                 base_url: str | None = None, api_key: str | None = None, cache: bool = True,
                 temperature: float | None = None, max_tokens: int | None = None,
                 num_retries: int = 3, timeout: float | None = _DEFAULT_TIMEOUT,
                 callbacks: list[Any] | None = None, provider: Any = None,
                 finetuning_model: str | None = None, launch_kwargs: dict[str, Any] | None = None,
                 train_kwargs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__()
        if not isinstance(model, str) or not model.strip():
            raise ValueError(f"LM: model must be a non-empty string like 'openai/gpt-4o-mini', "
                             f"got {model!r}")
        if model_type != "chat":
            if isinstance(model_type, str) and model_type.startswith(("http://", "https://")):
                raise ValueError(f"LM({model!r}, {model_type!r}): the second positional argument "
                                 f"is model_type (as in DSPy); pass the endpoint as "
                                 f"api_base={model_type!r}")
            raise ValueError(f"LM({model!r}): model_type={model_type!r} is not supported; "
                             "lazystream calls chat models through the Chat Completions API "
                             "(model_type='chat')")
        if api_base is not None and base_url is not None and api_base != base_url:
            raise ValueError(f"LM: api_base={api_base!r} and base_url={base_url!r} disagree; "
                             "pass one of them")
        self.model = model
        self.model_name = _strip_provider(model)
        self.api_base = api_base or base_url
        self.api_key = api_key
        self.cache = bool(cache)
        self.model_type = model_type
        self.num_retries = num_retries
        self.timeout = timeout
        self.callbacks = list(callbacks or ())
        self.provider = provider
        self.finetuning_model = finetuning_model
        self.launch_kwargs = dict(launch_kwargs or {})
        self.train_kwargs = dict(train_kwargs or {})
        self.kwargs = {k: v for k, v in
                       {"temperature": temperature, "max_tokens": max_tokens, **kwargs}.items()
                       if v is not None}
        self._client_obj: Any = None
        self._client_lock = threading.Lock()
        # One AsyncOpenAI client per event loop: its connection pool belongs to one loop.
        self._async_clients: weakref.WeakKeyDictionary[Any, tuple[Any, Any]] = \
            weakref.WeakKeyDictionary()

    def __repr__(self) -> str:
        return f"LM({self.model!r})"

    def __call__(self, prompt: str | None = None, messages: list[dict[str, Any]] | None = None,
                 **kwargs: Any) -> list[str]:
        given = {k: v for k, v in (("prompt", prompt), ("messages", messages)) if v is not None}
        return call_with_callbacks(
            self, "lm", {"prompt": prompt, "messages": messages, "kwargs": kwargs},
            lambda: ModuleBase.__call__(self, **given, **kwargs))

    async def acall(self, prompt: str | None = None, messages: list[dict[str, Any]] | None = None,
                    **kwargs: Any) -> list[str]:
        """Await ``[reply text]``: ``forward``'s async twin (``openai.AsyncOpenAI``)."""
        from ._async import (
            acall_module,  # late: _async imports module.py, which is fine
        )

        given = {k: v for k, v in (("prompt", prompt), ("messages", messages)) if v is not None}
        return await acall_with_callbacks(
            self, "lm", {"prompt": prompt, "messages": messages, "kwargs": kwargs},
            lambda: acall_module(self, self.aforward, (), {**given, **kwargs}))

    def _request(self, prompt: str | None, messages: list[dict[str, Any]] | None,
                 kwargs: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any], str | None]:
        """Return the messages, the request params and the cache key (``None``: no cache)."""
        if messages is None:
            if not isinstance(prompt, str):
                raise TypeError(f"LM: pass a prompt string or messages=[...], got {prompt!r}")
            messages = [{"role": "user", "content": prompt}]
        use_cache = kwargs.pop("cache", self.cache)
        params = {**self.kwargs, **{k: v for k, v in kwargs.items() if v is not None}}
        local = {k: params.pop(k) for k in _LOCAL_KEYWORDS if k in params}
        cache_key = None
        if use_cache:
            request = {"model": self.model_name, "messages": messages, "params": params}
            if local.get("rollout_id") is not None:
                request["rollout_id"] = local["rollout_id"]
            cache_key = _cache.key(request)
        return messages, params, cache_key

    def forward(self, prompt: str | None = None, messages: list[dict[str, Any]] | None = None,
                **kwargs: Any) -> list[str]:
        """Return ``[reply text]`` for ``prompt`` or ``messages`` (extra kwargs: request params)."""
        messages, params, cache_key = self._request(prompt, messages, kwargs)
        # A streamify reader that left stops the run at the next model call, whether or not
        # a listener streams this one.
        check_cancelled(current_run.get())
        client = self._client()
        if cache_key is not None:
            hit = _cache.get(cache_key)
            if hit is not None:
                return [hit]
        run = token_run.get()
        with lm_call(self.model) as call:
            if run is not None:
                text = self._stream(client, messages, params, run, call)
            else:
                response = self._create(client, model=self.model_name, messages=messages, **params)
                text = _reply(response, call)
        if cache_key is not None:
            _cache.put(cache_key, text)
        return [text]

    async def aforward(self, prompt: str | None = None,
                       messages: list[dict[str, Any]] | None = None, **kwargs: Any) -> list[str]:
        """The async ``forward``: the same request, cache and streaming."""
        messages, params, cache_key = self._request(prompt, messages, kwargs)
        check_cancelled(current_run.get())
        client = await self._async_client()
        if cache_key is not None:
            hit = _cache.get(cache_key)
            if hit is not None:
                return [hit]
        run = token_run.get()
        with lm_call(self.model) as call:
            if run is not None:
                text = await self._astream(client, messages, params, run, call)
            else:
                response = await self._acreate(client, model=self.model_name,
                                                                messages=messages, **params)
                text = _reply(response, call)
        if cache_key is not None:
            _cache.put(cache_key, text)
        return [text]

    def _stream(self, client: Any, messages: list[dict[str, Any]], params: dict[str, Any],
                run: StreamRun, call: LMCall) -> str:
        check_cancelled(run)
        stream = self._create(client, model=self.model_name, messages=messages, stream=True,
                              stream_options={"include_usage": True}, **params)
        parts: list[str] = []
        cancelled = run.cancelled
        owner = current_lazy_run()
        # the run's cancel shuts the socket: a stalled model does not delay the stop
        closing = owner.on_cancel(stream_closer(stream)) if owner is not None else contextlib.nullcontext()
        try:
            for chunk in closing_iter(stream, closing):
                if cancelled.is_set():
                    break
                _take(chunk, parts, call)
        except Exception:
            if cancelled.is_set():   # the cancel shut the socket under the reader
                check_cancelled(run)
            raise
        finally:
            stream.close()  # also on cancel: the model server sees the connection close
        check_cancelled(run)
        return "".join(parts)

    async def _astream(self, client: Any, messages: list[dict[str, Any]], params: dict[str, Any],
                       run: StreamRun, call: LMCall) -> str:
        check_cancelled(run)
        stream = await self._acreate(
            client, model=self.model_name, messages=messages, stream=True,
            stream_options={"include_usage": True}, **params)
        parts: list[str] = []
        cancelled = run.cancelled
        owner = current_lazy_run()
        task = asyncio.current_task()
        # the run's cancel (from any thread) cancels this task: a stalled model does not
        # delay the stop
        closing = owner.on_cancel(_canceller(task)) if owner is not None and task is not None \
            else contextlib.nullcontext()
        try:
            with closing:
                async for chunk in stream:
                    if cancelled.is_set():
                        break
                    _take(chunk, parts, call)
        except asyncio.CancelledError:
            if not cancelled.is_set():
                raise   # the task was cancelled by its own caller, not by the run
            if task is not None and hasattr(task, "uncancel"):
                task.uncancel()
            check_cancelled(run)
        finally:
            await stream.close()  # also on cancel: the model server sees the connection close
        check_cancelled(run)
        return "".join(parts)

    def _endpoint(self) -> tuple[str | None, str, dict[str, Any]]:
        """Return ``(base_url, api_key, client options)``; raises ``ValueError`` without a key."""
        base_url = (self.api_base or os.environ.get("OPENAI_BASE_URL")
                    or os.environ.get("OPENAI_API_BASE") or None)
        key = self.api_key or os.environ.get("OPENAI_API_KEY")
        if not key:
            if base_url is None:
                raise ValueError(
                    f"LM({self.model!r}): no API key. Pass api_key=..., or set "
                    "OPENAI_API_KEY; for an OpenAI-compatible server (or the bundled "
                    "engine) set OPENAI_BASE_URL or pass api_base=")
            key = "unused"
        extra = {"timeout": self.timeout} if self.timeout is not None else {}
        # the SDK retries nothing: _create/_acreate do, and say each retry (log + status event)
        return base_url, key, {"max_retries": 0, **extra}

    async def _async_client(self) -> Any:
        loop = asyncio.get_running_loop()
        entry = self._async_clients.get(loop)
        if entry is None:
            import openai
            base_url, key, options = self._endpoint()
            client = openai.AsyncOpenAI(api_key=key, base_url=base_url, **options)
            closer = _closed_with_loop(client)
            entry = self._async_clients[loop] = (client, closer)
            await closer.__anext__()
        return entry[0]

    def _create(self, client: Any, **request: Any) -> Any:
        """The SDK request, retried ``num_retries`` times after a 429, a 5xx or a failed
        connection; the run's cancel ends it at once, even before the model answers."""
        attempt = 0
        while True:
            try:
                with stoppable(current_lazy_run()):
                    return client.chat.completions.create(**request)
            except Exception as e:
                check_cancelled(current_run.get())   # ended by a cancel: raise that instead
                delay = self._retry_delay(e, attempt)
                if delay is None:
                    raise
            attempt += 1
            owner = current_lazy_run()
            if owner is None:
                time.sleep(delay)
            elif owner.cancelled.wait(delay):   # a cancel during the backoff ends it at once
                check_cancelled(current_run.get())

    async def _acreate(self, client: Any, **request: Any) -> Any:
        """``_create`` for the async client."""
        attempt = 0
        while True:
            try:
                return await client.chat.completions.create(**request)
            except Exception as e:
                delay = self._retry_delay(e, attempt)
                if delay is None:
                    raise
            attempt += 1
            await asyncio.sleep(delay)

    def _retry_delay(self, error: BaseException, attempt: int) -> float | None:
        """Seconds to wait before the next attempt (said in the log and as a ``status``
        event, so a UI sees a retry, not a stall), or None when ``error`` is final."""
        import openai
        status = getattr(error, "status_code", None)
        retryable = (isinstance(error, openai.APIConnectionError) and not isinstance(error, openai.APITimeoutError)) \
            or (status is not None and (status >= 500 or status == 429))
        if not retryable or attempt >= self.num_retries:
            return None
        delay = 0.5 * 2 ** attempt
        response = getattr(error, "response", None)
        retry_after = response.headers.get("retry-after") if response is not None else None
        with contextlib.suppress(TypeError, ValueError):   # an HTTP-date: keep our own backoff
            delay = max(delay, float(retry_after))  # type: ignore[arg-type]
        delay = min(delay, _MAX_RETRY_DELAY)
        reason = "rate limited" if status == 429 else f"server error {status}" if status else "connection failed"
        message = f"{reason}, retrying in {delay:g} s"
        _log.warning("LM(%r): %s (attempt %d of %d)", self.model, message, attempt + 2, self.num_retries + 1)
        emit("status", message)
        return delay

    def _client(self) -> Any:
        client = self._client_obj
        if client is not None:
            return client
        with self._client_lock:
            if self._client_obj is None:
                import openai  # the SDK is heavy; import it when a model is first called
                base_url, key, options = self._endpoint()
                self._client_obj = openai.OpenAI(api_key=key, base_url=base_url,
                                                 http_client=http_client(), **options)
            return self._client_obj


def _canceller(task: asyncio.Task) -> Callable[[], None]:
    """Return a function that cancels ``task`` from any thread (a no-op once its loop closed)."""
    loop = task.get_loop()

    def cancel() -> None:
        try:
            loop.call_soon_threadsafe(task.cancel)
        except RuntimeError:
            pass   # the loop already closed: the task is over
    return cancel


async def _closed_with_loop(client: Any) -> AsyncIterator[None]:
    """Close ``client`` when its event loop shuts down.

    An event loop has no close hook, but it does close the async generators still open
    when it shuts down (``asyncio.run`` does, so do servers): this one waits at its
    ``yield`` until then, so the client's connections are closed in the loop that owns them.
    """
    try:
        yield
    finally:
        await client.close()


def _reply(response: Any, call: LMCall) -> str:
    """Return a whole (non-streamed) reply's text; count its usage for the run."""
    call.usage(usage_of(response.usage))
    check_cancelled(current_run.get())
    return response.choices[0].message.content or ""


def _take(chunk: Any, parts: list[str], call: LMCall) -> None:
    """Write one streamed chunk's usage and text as events; collect its text in ``parts``."""
    call.usage(usage_of(chunk.usage))
    if not chunk.choices:
        return
    delta = chunk.choices[0].delta.content
    if delta:
        parts.append(delta)
        emit("text", delta)


def closing_iter(stream: Any, closing: Any) -> Iterator[Any]:
    """Iterate ``stream`` while ``closing`` (a context manager) is entered."""
    with closing:
        yield from stream


def _strip_provider(model: str) -> str:
    provider, sep, rest = model.partition("/")
    return rest if sep and provider in _PROVIDERS and rest else model
