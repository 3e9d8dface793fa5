"""Every ```python snippet in the docs runs as it is."""
from __future__ import annotations

import pathlib
import re

import pytest

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"
SNIPPET = re.compile(r"```python\n(.*?)```", re.S)


def _snippets():
    for path in sorted(DOCS.glob("*.md")):
        for i, code in enumerate(SNIPPET.findall(path.read_text())):
            if "# not run" in code:
                continue
            yield pytest.param(code, id=f"{path.stem}-{i}")


@pytest.mark.parametrize("code", list(_snippets()))
def test_doc_snippet_runs(code, capsys):
    exec(compile(code, "<doc>", "exec"), {"__name__": "__doc_snippet__"})
