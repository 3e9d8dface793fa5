"""Docstring parsing for tool schemas: the summary and each parameter's description and type.

Google style (``Args:`` / ``Arguments:`` / ``Parameters:``) and reST (``:param x:``,
``:param int x:``, ``:type x:``) are understood. The text is only parsed; nothing in a
docstring is ever evaluated.
"""
from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field

_ARGS_HEADERS = {"args", "arguments", "parameters", "params", "keyword args",
                 "keyword arguments", "kwargs", "other parameters"}
_OTHER_HEADERS = {"returns", "return", "yields", "yield", "raises", "raise", "examples",
                  "example", "note", "notes", "see also", "warning", "warnings",
                  "attributes", "todo", "references"}
_HEADER = re.compile(r"^\s*([A-Za-z][A-Za-z ]*?)\s*:\s*$")
_REST_PARAM = re.compile(r"^:param\s+(?:(?P<type>[^:]+?)\s+)?(?P<name>\*{0,2}\w+)\s*:\s*(?P<desc>.*)$")
_REST_TYPE = re.compile(r"^:type\s+(?P<name>\*{0,2}\w+)\s*:\s*(?P<type>.*)$")
_REST_ANY = re.compile(r"^:\w+")
_GOOGLE_NAME = re.compile(r"^(\*{0,2}\w+)\s*")


@dataclass
class ParsedDoc:
    """What a docstring says: summary, ``{param: description}``, ``{param: type text}``."""

    summary: str = ""
    descriptions: dict[str, str] = field(default_factory=dict)
    types: dict[str, str] = field(default_factory=dict)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _split_google_entry(text: str) -> tuple[str, str | None, str] | None:
    """Split ``name (type): description`` into its parts; ``None`` if it is not an entry."""
    m = _GOOGLE_NAME.match(text)
    if not m:
        return None
    name, rest = m.group(1), text[m.end():]
    type_text = None
    if rest.startswith("("):
        depth = 0
        for i, ch in enumerate(rest):
            depth += ch in "([{"
            depth -= ch in ")]}"
            if depth == 0:
                type_text, rest = rest[1:i].strip(), rest[i + 1:].lstrip()
                break
        else:
            return None
    if not rest.startswith(":"):
        return None
    return name.lstrip("*"), type_text, rest[1:].strip()


def _clean_type(type_text: str | None) -> str | None:
    if not type_text:
        return None
    # "int, optional" / "str, default 'x'": the part after the comma is prose, not a type.
    depth, out = 0, []
    for ch in type_text:
        depth += ch in "([{"
        depth -= ch in ")]}"
        if ch == "," and depth == 0:
            break
        out.append(ch)
    return "".join(out).strip() or None


def parse_docstring(doc: str | None) -> ParsedDoc:
    """Return the summary, parameter descriptions and parameter type texts of ``doc``."""
    parsed = ParsedDoc()
    if not doc or not doc.strip():
        return parsed
    lines = inspect.cleandoc(doc).splitlines()
    summary: list[str] = []
    in_summary = True
    section: str | None = None
    section_indent = 0
    current: tuple[str, str] | None = None  # (kind, name) that continuation lines extend
    entry_indent = 0
    for raw in lines:
        line = raw.rstrip()
        stripped = line.strip()
        header = _HEADER.match(line)
        if header and header.group(1).strip().lower() in _ARGS_HEADERS | _OTHER_HEADERS:
            in_summary = False
            section = header.group(1).strip().lower()
            section_indent = _indent(line)
            current = None
            continue
        if stripped.startswith(":") and _REST_ANY.match(stripped):
            in_summary, section = False, None
            current = None
            if m := _REST_PARAM.match(stripped):
                name = m.group("name").lstrip("*")
                parsed.descriptions[name] = m.group("desc").strip()
                if m.group("type"):
                    parsed.types[name] = _clean_type(m.group("type"))
                current, entry_indent = ("param", name), _indent(line)
            elif m := _REST_TYPE.match(stripped):
                parsed.types[m.group("name").lstrip("*")] = _clean_type(m.group("type"))
            continue
        if in_summary:
            if stripped:
                summary.append(stripped)
            elif summary:
                in_summary = False
            continue
        if not stripped:
            continue
        if section in _ARGS_HEADERS:
            if current is not None and _indent(line) > entry_indent:
                kind, name = current
                parsed.descriptions[name] = (parsed.descriptions[name] + " " + stripped).strip()
                continue
            entry = _split_google_entry(stripped)
            if entry is None:
                if _indent(line) <= section_indent:
                    # Prose back at the header's indentation closes the section.
                    section = None
                current = None
                continue
            name, type_text, desc = entry
            parsed.descriptions[name] = desc
            if type_text and (cleaned := _clean_type(type_text)):
                parsed.types[name] = cleaned
            current, entry_indent = ("param", name), _indent(line)
        elif section is None and current is not None and _indent(line) > entry_indent:
            kind, name = current
            parsed.descriptions[name] = (parsed.descriptions[name] + " " + stripped).strip()
    parsed.summary = " ".join(summary)
    return parsed
