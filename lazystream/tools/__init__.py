"""Tools and agents: ``fc_register``, ``FunctionCall``, ``FunctionCallAgent``, ``ReactAgent``.

    from lazystream.tools import fc_register, FunctionCallAgent

    @fc_register("tool")
    def get_current_weather(location: str):
        '''Get the current weather in a given location

        Args:
            location (str): The city, e.g. Paris.
        '''
        ...

    agent = FunctionCallAgent(llm, ["get_current_weather"])

See ``docs/agents.md``.
"""
from ._registry import RegisteredTool, fc_register
from ._schema import ToolSchemaError
from .function_call import FunctionCall, FunctionCallAgent, ToolCallLimitError
from .react_agent import ReactAgent

__all__ = ["FunctionCall", "FunctionCallAgent", "ReactAgent", "RegisteredTool", "ToolCallLimitError",
           "ToolSchemaError", "fc_register"]
# `RegisteredTool` is a function with its schema (the registry's record); `lazystream.Tool`
# is DSPy's Tool, a module. Two things, two names: see docs/agents.md.
