PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/weather_agent.py

test: $(STAMP)
	$(BIN)/python -m pytest -p no:cacheprovider --timeout=60 tests

bench: $(STAMP)
	$(BIN)/python benchmarks/queue_bench.py
	$(BIN)/python benchmarks/llm_bench.py
	$(BIN)/python benchmarks/streamify_bench.py

clean:
	rm -rf $(VENV) build *.egg-info
