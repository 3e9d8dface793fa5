"""Every doc snippet runs as a reader would run it: on its own, in a fresh interpreter
(snippets marked ``# not run`` are skipped). A page's snippets run side by side, each in
its own process and store, so none can lean on another's names or side effects."""
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
def test_each_snippet_runs_on_its_own(path, snippets, tmp_path):
    procs = []
    for i, code in enumerate(snippets, 1):
        script = tmp_path / f"{path.stem}_{i}.py"
        script.write_text(code)
        env = dict(os.environ, LAZYSTREAM_HOME=str(tmp_path / f"home{i}"))
        procs.append((i, code, subprocess.Popen([sys.executable, str(script)], cwd=ROOT, env=env, text=True,
                                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)))
    failed = []
    for i, code, proc in procs:
        out, err = proc.communicate(timeout=50)
        if proc.returncode != 0:
            first = code.strip().splitlines()[0]
            failed.append(f"snippet {i} of {path.name} (starts {first!r}) failed:\n{out[-1500:]}\n{err[-3000:]}")
    assert not failed, "\n\n".join(failed)
