"""The demo policy for ``ReactAgent`` on the bundled engine: a rule-based ReAct "model"
for arithmetic, as in LazyLLM's ReactAgent example ("What is 20+(2*4)? Calculate step by
step." with ``multiply_tool`` and ``add_tool``).

``ArithmeticReactPolicy`` is a callable the engine asks for each chat request. It is not a
transcript: it finds the arithmetic expression in the last user message, replays the tool
results the conversation already holds, and

1. while an operation is left, answers with a thought and ONE tool call for the innermost
   operation (left to right): ``Thought: 2*4 comes first; I use multiply_tool.`` and
   ``multiply_tool(a=2, b=4)``, then ``Thought: now 20+8; I use add_tool.`` …;
2. once the expression is reduced to a number, answers
   ``Answer: The result of 20+(2*4) is 28.``

Which tool does which operation comes from ``tools`` (default: ``add_tool``,
``subtract_tool``, ``multiply_tool``, ``divide_tool``); the request must offer it.
"""
from __future__ import annotations

import ast
import json
import re
from typing import Any

from lazystream.engine.policy import Request, ToolCall, Turn

__all__ = ["ArithmeticReactPolicy", "DEFAULT_TOOLS"]

DEFAULT_TOOLS = {"+": "add_tool", "-": "subtract_tool", "*": "multiply_tool", "/": "divide_tool"}
_OPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
_EXPRESSION = re.compile(r"[\d(][\d\s+\-*/().]*[\d)]")


def _expression_in(text: str) -> str | None:
    """The longest arithmetic expression with an operator in ``text``, or None."""
    found = [m.group(0).strip() for m in _EXPRESSION.finditer(text)]
    found = [f for f in found if any(op in f for op in "+-*/")]
    return max(found, key=len) if found else None


def _number(text: str) -> int | float:
    value = json.loads(text)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"not a number: {text!r}")
    return value


def _show(value: Any) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


class _Tree:
    """The expression as nested ``[op, left, right]`` lists and numbers."""

    def __init__(self, expression: str) -> None:
        self.root = self._build(ast.parse(expression, mode="eval").body)

    def _build(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return [_OPS[type(node.op)], self._build(node.left), self._build(node.right)]
        raise ValueError("only + - * / of numbers")

    def next_operation(self) -> list | None:
        """The innermost, leftmost operation whose operands are both numbers."""
        def find(node: Any) -> list | None:
            if not isinstance(node, list):
                return None
            for child in node[1:]:
                inner = find(child)
                if inner is not None:
                    return inner
            return node
        return find(self.root)

    def replace(self, operation: list, value: Any) -> None:
        if self.root is operation:
            self.root = value
            return

        def walk(node: Any) -> None:
            for i in (1, 2):
                if node[i] is operation:
                    node[i] = value
                    return
                if isinstance(node[i], list):
                    walk(node[i])
        walk(self.root)


class ArithmeticReactPolicy:
    """A rule-based ReAct policy that computes arithmetic one tool call per turn.

    ``tools``: operator → tool name (``{"+": "add_tool", "*": "multiply_tool", ...}``).
    """

    def __init__(self, tools: dict[str, str] | None = None) -> None:
        self.tools = dict(DEFAULT_TOOLS if tools is None else tools)

    def __call__(self, request: Request) -> str | Turn:
        expression = _expression_in(request.last_user)
        if expression is None:
            return "Answer: I can only calculate arithmetic expressions such as 20+(2*4)."
        try:
            tree = _Tree(expression)
        except (SyntaxError, ValueError):
            return f"Answer: I cannot read {expression!r} as arithmetic of + - * / on numbers."
        for result in self._results(request.messages):
            operation = tree.next_operation()
            if operation is None:
                break
            try:
                tree.replace(operation, _number(result))
            except (ValueError, json.JSONDecodeError):
                return f"Answer: I could not calculate {expression}: the tool said {result!r}."
        operation = tree.next_operation()
        if operation is None:
            return f"Answer: The result of {expression} is {_show(tree.root)}."
        op, a, b = operation
        tool = self.tools.get(op)
        if tool is None or tool not in request.tool_names:
            return (f"Answer: I cannot calculate {expression}: no tool for '{op}' among "
                    f"{', '.join(request.tool_names) or 'none'}.")
        step = f"{_show(a)}{op}{_show(b)}"
        thought = f"now {step}" if self._results(request.messages) else f"{step} comes first"
        return Turn(content=f"Thought: {thought}; I use {tool}.\n",
                    tool_calls=[ToolCall(tool, {"a": a, "b": b})])

    @staticmethod
    def _results(messages: list[dict[str, Any]]) -> list[str]:
        """The tool results since the last user message, in order."""
        start = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
        return [str(m.get("content") or "") for m in messages[start + 1:] if m.get("role") == "tool"]
