"""Adapters: how a signature becomes chat messages, and a reply becomes output fields."""
from .base import Adapter, AdapterParseError
from .chat_adapter import ChatAdapter
from .json_adapter import JSONAdapter

__all__ = ["Adapter", "AdapterParseError", "ChatAdapter", "JSONAdapter"]
