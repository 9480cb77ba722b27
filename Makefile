# The README's two commands are `make demo` and `make test`. Both work on a fresh machine with only Python 3.11
# and package-registry access: the virtual environment is built from uv.lock, bootstrapping uv with pip when
# it is missing.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
UV_VERSION := 0.13.9
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
VENV := .venv
BIN := $(VENV)/bin
DEMO_ROWS ?= 1000000
DEMO_SEED ?= 7
DEMO_FILE ?= data/paysim-demo.parquet
PYTEST_ARGS ?=

.PHONY: help venv demo test lint typecheck unit up down status clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

.tools/bin/uv:
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet "uv==$(UV_VERSION)"

$(VENV)/.synced: uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen --python $(PYTHON)
	@touch $@

venv: $(VENV)/.synced ## create or update .venv from uv.lock

demo: venv ## start the local stack, generate and ingest a dataset, print its profile
	$(BIN)/fraudctl up
	$(BIN)/fraudctl data generate --rows $(DEMO_ROWS) --seed $(DEMO_SEED) --output $(DEMO_FILE)
	$(BIN)/fraudctl data ingest --source $(DEMO_FILE)
	$(BIN)/fraudctl data profile $(DEMO_FILE) --summary
	$(BIN)/fraudctl status

test: venv lint typecheck ## lint, type-check and run every test (starts its own local stack on free ports)
	$(BIN)/pytest $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy fraud components pipelines serving monitoring tests benchmarks

up: venv ## start the local stack
	$(BIN)/fraudctl up

down: venv ## stop the local stack
	$(BIN)/fraudctl down

status: venv ## show what the local stack runs where
	$(BIN)/fraudctl status

clean: ## stop the stack and remove local state (.fraud/, data/)
	-$(BIN)/fraudctl down
	rm -rf .fraud data
