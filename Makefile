# Two commands do all the set-up on a fresh machine with only Python and pip:
#   make demo   create .venv, install neuronkit, run the main job on embedded data
#   make test   create .venv with the test dependencies, lint, run the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test test-fast lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/neuronkit train --data digits

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples

test: lint
	$(BIN)/python -m pytest

test-fast: lint  # everything but the slow accuracy runs (tests/test_results.py); CI runs `make test`
	$(BIN)/python -m pytest -m "not slow"

bench: $(VENV)/.installed-test
	cd benchmarks && env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE ../$(BIN)/python bench_engine.py && env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE ../$(BIN)/python bench_cnn.py && env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE ../$(BIN)/python bench_fit.py

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .ruff_cache .hypothesis
