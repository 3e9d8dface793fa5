"""``TrainableModule``: deploy a local OpenAI-compatible server and chat with it.

``TrainableModule("internlm2-chat-20b", stream=True).start()`` picks a deployment
(``deploy=``), waits for the server's ``/v1/models``, and connects an
``OnlineChatModule`` to it. Calls behave exactly as ``OnlineChatModule`` calls, with the
events written under this module's name. ``stop()`` (or interpreter exit) ends the server.
"""
from __future__ import annotations

from typing import Any

from ..engine import Engine
from ..engine.rawtext import get_format
from ..module import ModuleBase
from ._deploy import Deployment, deployment_for
from ._tool_reply import reply_trace_text
from .errors import LLMConfigError
from .online import OnlineChatModule

__all__ = ["TrainableModule"]

_LOCAL_KEY = "lazystream-local"


class TrainableModule(ModuleBase):
    """A model served locally. ``deploy``:

    * ``None`` — the first of vllm, llama-server, ollama found on PATH, else the bundled
      engine (with a log line saying so);
    * ``"engine"`` — the bundled scripted engine (its demo policy), or an ``Engine(...)``
      to use your own policy;
    * ``"vllm"``, ``"llamacpp"``, ``"ollama"`` — that server's serve command for
      ``base_model`` on a free port;
    * a command template such as ``"python my_server.py --port {port} --model {model}"``
      (or a list of arguments); ``{port}`` is required, ``{model}``, ``{host}``,
      ``{python}`` are filled in too.

    ``tool_call_format="internlm2"|"qwen"`` parses tool calls a raw-text model writes in
    its text (with the engine, it also makes the engine write them that way).
    ``ready_timeout``: seconds to wait for the server. Other keyword arguments go to the
    ``OnlineChatModule`` (``system_prompt``, ``timeout``, ``max_retries``, ``temperature``…).
    """

    def __init__(self, base_model: str = "", stream: bool = False, return_trace: bool = False,
                 deploy: str | list[str] | Engine | None = None,
                 tool_call_format: str | None = None, *, ready_timeout: float | None = None,
                 name: str | None = None, **chat_options: Any) -> None:
        super().__init__(return_trace=return_trace, name=name)
        if not isinstance(base_model, str):
            raise LLMConfigError(f"TrainableModule: base_model must be a str, got {base_model!r}")
        if tool_call_format is not None:
            get_format(tool_call_format)
        if ready_timeout is not None and (not isinstance(ready_timeout, (int, float))
                                          or ready_timeout <= 0):
            raise LLMConfigError(f"TrainableModule: ready_timeout must be seconds > 0, "
                                 f"got {ready_timeout!r}")
        self._base_model = base_model
        self._stream = bool(stream)
        self._deploy_spec = deploy
        self._tool_call_format = tool_call_format
        self._ready_timeout = ready_timeout
        self._chat_options = chat_options
        self._deployment: Deployment | None = None
        self._llm: OnlineChatModule | None = None
        # Fail at construction, not at start(), for a deploy value that cannot work.
        if not (deploy is None or isinstance(deploy, Engine) or deploy == "engine"):
            deployment_for(deploy, base_model, tool_call_format)

    @property
    def base_model(self) -> str:
        return self._base_model

    @property
    def base_url(self) -> str:
        """The deployed server's ``…/v1`` URL. Raises ``RuntimeError`` before ``start()``."""
        if self._deployment is None:
            raise RuntimeError(f"{self!r} is not started; call .start()")
        return self._deployment.base_url

    @property
    def deployment(self) -> Deployment | None:
        """The running deployment (``.kind``, ``.base_url``, ``.pid`` for processes), or None."""
        return self._deployment

    @property
    def stream(self) -> bool:
        """Whether answers stream to the caller's session as they arrive."""
        return self._stream

    def _trace_text(self, output: Any) -> str:
        return reply_trace_text(output)

    def _start(self) -> None:
        deployment = deployment_for(self._deploy_spec, self._base_model, self._tool_call_format)
        deployment.start(self._ready_timeout)
        self._deployment = deployment
        self._llm = OnlineChatModule(model=deployment.model, base_url=deployment.base_url,
                                     api_key=_LOCAL_KEY, stream=self._stream,
                                     tool_call_format=self._tool_call_format, name=self.name,
                                     **self._chat_options)

    def stop(self) -> None:
        """Stop the server (and every process it started). Idempotent; ``start()`` again works."""
        deployment, self._deployment, self._llm = self._deployment, None, None
        object.__setattr__(self, "_started", False)
        if deployment is not None:
            deployment.stop()

    def forward(self, input: Any, **kwargs: Any) -> str | dict[str, Any]:
        """Chat with the deployed model; see ``OnlineChatModule.forward``."""
        llm = self._llm
        if llm is None:
            raise RuntimeError(f"TrainableModule({self._base_model!r}) is not started; call .start() "
                               f"first (it deploys the server)")
        return llm.forward(input, **kwargs)

    def __repr__(self) -> str:
        where = self._deployment.base_url if self._deployment else "not started"
        return f"<TrainableModule {self.name!r} {self._base_model!r} {where}>"
