PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.dev-installed

.PHONY: demo test bench lint dist clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

# build, twine, mypy, ruff: the `dev` extra (a superset of `test`)
$(DEV_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(DEV_STAMP)

demo: $(STAMP)
	$(BIN)/python examples/weather_agent.py

# Compiled once first: many tests start Python processes that import the package, and
# where PYTHONDONTWRITEBYTECODE is set each of them would compile it again (~0.3 s each).
test: $(STAMP)
	$(BIN)/python -m compileall -q lazystream
	$(BIN)/python -m pytest -p no:cacheprovider --timeout=60 tests

bench: $(STAMP)
	$(BIN)/python benchmarks/queue_bench.py
	$(BIN)/python benchmarks/llm_bench.py
	$(BIN)/python benchmarks/streamify_bench.py
	$(BIN)/python benchmarks/scale_bench.py
	$(BIN)/python benchmarks/runs_bench.py
	$(BIN)/python benchmarks/web_bench.py
	$(BIN)/python benchmarks/redis_bench.py
	$(BIN)/python benchmarks/reader_path_bench.py

# mypy at default settings and ruff on its default rules: both must be clean
lint: $(DEV_STAMP)
	$(BIN)/python -m mypy lazystream
	$(BIN)/python -m ruff check lazystream

# sdist + wheel in dist/, checked by twine; the unpacked sdist must hold a collectable test suite
dist: $(DEV_STAMP)
	rm -rf dist
	$(BIN)/python -m build --outdir dist .
	$(BIN)/python -m twine check --strict dist/*
	rm -rf build/sdist-check && mkdir -p build/sdist-check
	tar -xzf dist/lazystream-*.tar.gz -C build/sdist-check
	cd build/sdist-check/lazystream-* && ../../../$(BIN)/python -m pytest -p no:cacheprovider --collect-only -q tests > /dev/null

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .ruff_cache
