"""Every doc runs as a reader would run it: its ```python snippets, top to bottom, in a
fresh interpreter (snippets marked ``# not run`` are skipped)."""
from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
SNIPPET = re.compile(r"```python\n(.*?)```", re.S)


def _docs():
    for path in sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]:
        code = [c for c in SNIPPET.findall(path.read_text()) if "# not run" not in c]
        if code:
            yield pytest.param(path, code, id=path.stem)


@pytest.mark.parametrize("path,snippets", list(_docs()))
def test_doc_runs_top_to_bottom(path, snippets, tmp_path):
    script = tmp_path / f"{path.stem}.py"
    script.write_text("\n\n".join(snippets))
    env = dict(os.environ, LAZYSTREAM_HOME=str(tmp_path / "home"))
    proc = subprocess.run([sys.executable, str(script)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=50)
    assert proc.returncode == 0, f"{path.name} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
