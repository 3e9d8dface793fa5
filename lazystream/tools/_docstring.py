"""Docstring parsing for tool schemas, with ``docstring_parser``: the summary and each
parameter's description and type text.

Google (``Args:``), NumPy (``Parameters`` / ``----------``), reST (``:param x:``,
``:type x:``) and one-line docstrings are understood. The seed's page writes Google
sections flush left; those are indented before parsing. Nothing in a docstring is
evaluated.
"""
from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field

import docstring_parser

__all__ = ["ParsedDoc", "parse_docstring"]

_GOOGLE_HEADER = re.compile(r"^(Args|Arguments|Parameters|Params|Keyword Args|Keyword Arguments|"
                            r"Other Parameters|Returns|Return|Yields|Yield|Raises|Raise|Examples?|"
                            r"Notes?|Warnings?|See Also|Attributes|Todo|References):\s*$")


@dataclass
class ParsedDoc:
    """What a docstring says: summary, ``{param: description}``, ``{param: type text}``."""

    summary: str = ""
    descriptions: dict[str, str] = field(default_factory=dict)
    types: dict[str, str] = field(default_factory=dict)


def _indent_flush_left_sections(text: str) -> str:
    """Indent the entries of Google sections written at the header's own indentation."""
    lines = text.splitlines()
    flush = any(_GOOGLE_HEADER.match(line) and i + 1 < len(lines) and lines[i + 1].strip()
                and not lines[i + 1][0].isspace() and not _GOOGLE_HEADER.match(lines[i + 1])
                for i, line in enumerate(lines))
    if not flush:
        return text
    out, in_section = [], False
    for line in lines:
        if _GOOGLE_HEADER.match(line):
            in_section = True
            out.append(line)
        else:
            out.append("    " + line if in_section and line.strip() else line)
    return "\n".join(out)


def _flat(text: str | None) -> str:
    return " ".join((text or "").split())


def _clean_type(type_text: str | None) -> str | None:
    if not type_text:
        return None
    # "int, optional" / "str, default 'x'": the part after a top-level comma is prose.
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
    text = inspect.cleandoc(doc)
    text = _indent_flush_left_sections(text)
    try:
        result = docstring_parser.parse(text)
    except docstring_parser.ParseError:
        return ParsedDoc(summary=_flat(text.split("\n\n", 1)[0]))
    summary = result.short_description or ""
    if result.long_description and not result.blank_after_short_description:
        # A summary wrapped over several lines: its continuation is the first paragraph.
        summary += " " + result.long_description.split("\n\n", 1)[0]
    parsed.summary = _flat(summary)
    for param in result.params:
        if param.args[0] not in ("param", "parameter", "arg", "argument", "key", "keyword", "other_param"):
            continue   # attributes, other sections
        name = param.arg_name.lstrip("*")
        parsed.descriptions[name] = _flat(param.description)
        if cleaned := _clean_type(param.type_name):
            parsed.types[name] = cleaned
    return parsed
