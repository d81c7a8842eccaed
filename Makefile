# Two commands from a fresh clone: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python

.PHONY: run test test-slow bench compare chaos lint format clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.run-installed: $(PY) setup.cfg pyproject.toml
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.test-installed: $(PY) setup.cfg pyproject.toml
	$(PY) -m pip install --quiet -e ".[test,bench]"
	touch $@ $(VENV)/.run-installed

run: $(VENV)/.run-installed
	$(PY) server.py

test: $(VENV)/.test-installed
	$(PY) -m pytest

test-slow: $(VENV)/.test-installed
	$(PY) -m pytest -m "slow or not slow"

bench: $(VENV)/.test-installed
	$(PY) -m bench

# The service next to inline sends, a bare pool, Huey and Celery; writes
# docs/benchmarks.md. The peers' packages are the bench's, not the product's.
$(VENV)/.peers-installed: $(VENV)/.test-installed bench/requirements-peers.txt
	$(PY) -m pip install --quiet -r bench/requirements-peers.txt
	touch $@

compare: $(VENV)/.peers-installed
	$(PY) -m bench.compare

# Kill and restart the service under a stream of callbacks; CHAOS_SECONDS=30 in CI.
CHAOS_SECONDS ?= 180
chaos: $(VENV)/.test-installed
	$(PY) -m bench.chaos --seconds $(CHAOS_SECONDS)

lint: $(VENV)/.test-installed
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

format: $(VENV)/.test-installed
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) build *.egg-info
