"""Adapters: how a signature becomes chat messages, and a reply becomes output fields."""
from .base import Adapter, AdapterParseError
from .chat_adapter import ChatAdapter
from .json_adapter import JSONAdapter
from .xml_adapter import XMLAdapter

__all__ = ["Adapter", "AdapterParseError", "ChatAdapter", "JSONAdapter", "XMLAdapter"]
