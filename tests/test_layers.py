"""Each layer of DESIGN.md imports only the layers below it."""
from __future__ import annotations

import ast
import pathlib

import pytest

PKG = pathlib.Path(__file__).resolve().parent.parent / "lazystream"
# Lowest first. A module's layer is its top-level name under lazystream/.
ORDER = [
    {"_version", "session"}, {"events"}, {"queue"}, {"executor", "runs"}, {"module", "flow", "follow", "stream"},
    {"llm", "engine"}, {"tools"}, {"programs"}, {"streaming"}, {"web", "inspection", "cli", "__main__"},
]
RANK = {name: i for i, names in enumerate(ORDER) for name in names}


def _layer(path: pathlib.Path) -> str:
    rel = path.relative_to(PKG)
    return rel.parts[0].removesuffix(".py")


def _imported_layers(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text())
    depth = len(path.relative_to(PKG).parts) - 1   # how many packages deep the file is
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:   # relative: climb to lazystream/, then take the first name
                if node.level - 1 < depth:
                    continue   # stays inside the file's own layer
                parts = (node.module or "").split(".")
                names = [parts[0]] if parts[0] else [a.name for a in node.names]
                found.update(names)
            elif node.module and node.module.split(".")[0] == "lazystream":
                parts = node.module.split(".")
                found.update([parts[1]] if len(parts) > 1 else [a.name for a in node.names])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "lazystream" and len(parts) > 1:
                    found.add(parts[1])
    return {name for name in found if name in RANK}


FILES = sorted(p for p in PKG.rglob("*.py") if p.name != "__init__.py" or p.parent != PKG)


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(PKG)))
def test_imports_only_downward(path):
    layer = _layer(path)
    assert layer in RANK, f"{path}: layer {layer!r} is not in DESIGN.md's table; add it to ORDER"
    upward = {name for name in _imported_layers(path) if RANK[name] > RANK[layer]}
    assert not upward, f"{path.relative_to(PKG)} ({layer}) imports higher layers: {sorted(upward)}"
