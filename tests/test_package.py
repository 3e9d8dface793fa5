"""The package as a team installs it: metadata, version, typing marker, the console script."""
from __future__ import annotations

import importlib.metadata
import pathlib
import subprocess
import sys

import pytest

import lazystream

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_metadata_names_license_version_urls_and_classifiers():
    meta = importlib.metadata.metadata("lazystream")
    assert meta["Version"] == lazystream.__version__
    assert meta["License-Expression"] == "Apache-2.0"
    assert "Typing :: Typed" in meta.get_all("Classifier")
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL"))
    assert set(urls) == {"Homepage", "Documentation", "Source", "Issues"}
    assert (ROOT / "LICENSE").read_text().lstrip().startswith("Apache License")


def test_the_package_is_typed():
    assert (pathlib.Path(lazystream.__file__).parent / "py.typed").is_file()


def test_the_console_script_is_python_m_lazystream():
    script = pathlib.Path(sys.executable).parent / "lazystream"
    if not script.exists():
        pytest.skip(f"lazystream is not installed as a script next to {sys.executable} (pip install -e .)")
    for args in (["--version"], ["engine", "--port", "70000"], ["show", "--help"]):
        by_script = subprocess.run([str(script), *args], capture_output=True, text=True, timeout=50)
        by_module = subprocess.run([sys.executable, "-m", "lazystream", *args], capture_output=True, text=True,
                                   timeout=50)
        assert (by_script.returncode, by_script.stdout, by_script.stderr) == \
               (by_module.returncode, by_module.stdout, by_module.stderr)
    assert by_script.stdout.startswith("usage: lazystream show [-h] sid")
