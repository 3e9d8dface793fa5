"""``ReactAgent``: the model reasons in the open — Thought, Action (a tool call),
Observation (its result) — round after round, until it writes the Answer.

It is a ``FunctionCallAgent`` whose model gets a ReAct instruction as its system prompt:
each tool-calling turn starts with a ``Thought: ...`` line, and the last turn is the answer
(``Answer: ...``). Streaming is the model's, as for ``FunctionCallAgent``: with a streaming
``llm`` every visible token — the thoughts and the answer — reaches ``FileSystemQueue()``
as it arrives; tool-call JSON never does.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from .function_call import FunctionCallAgent, ToolSpecifier

__all__ = ["REACT_INSTRUCTION", "ReactAgent"]

REACT_INSTRUCTION = """\
You solve the user's task step by step, using the tools you are given when they help.

Work in rounds. In each round:
Thought: say, in one short sentence, what you need next and why.
Action: call exactly one tool that provides it (never a tool you do not need).
You then receive the tool's result (the Observation) and start the next round.

When you have everything you need, call no tool and reply with one line:
Answer: the final answer to the user's question, in the language of the question.

Available tools: {tool_names}."""


class ReactAgent(FunctionCallAgent):
    """A Thought → Action → Observation agent; returns the model's final answer text.

    ``llm``: a chat module (``OnlineChatModule``, ``TrainableModule``; with ``stream=True``
    its thoughts and answer stream). ``tools``: registered names or functions.
    ``max_retries``: the most rounds (model requests). ``prompt``: your own instruction
    instead of ``REACT_INSTRUCTION`` (``{tool_names}`` in it is filled in). ``stream``:
    LazyLLM's switch, checked against the ``llm`` (which decides; see FunctionCallAgent).
    Raises ``ToolCallLimitError`` (also a ``ValueError``, as in LazyLLM) when the model
    still calls tools after ``max_retries`` rounds.
    """

    def __init__(self, llm: Callable[..., Any], tools: Iterable[ToolSpecifier],
                 max_retries: int = 5, return_trace: bool = False, prompt: str | None = None,
                 stream: bool | None = None, *, tool_timeout: float | None = 60.0,
                 name: str | None = None) -> None:
        if prompt is not None and not isinstance(prompt, str):
            raise TypeError(f"ReactAgent: prompt must be a str, got {prompt!r}")
        tools = list(tools) if not isinstance(tools, (str, bytes)) else tools
        self._template = prompt if prompt is not None else REACT_INSTRUCTION
        self._prompt = None
        super().__init__(llm, tools, max_retries, return_trace, tool_timeout=tool_timeout,
                         stream=stream, name=name)
        # The instruction names the resolved tools, so it is filled in after they resolve.
        names = ", ".join(t.name for t in self.function_call.tools)
        self._prompt = self._template.replace("{tool_names}", names)
        self.function_call._prompt = self._prompt

    @property
    def prompt(self) -> str:
        """The system prompt the model gets."""
        return self._prompt or ""
