# Chronicle: `make run` runs the whole system on the embedded default,
# `make test` runs everything CI runs.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test services test-tools lint format typecheck importlint pytest unit bench

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/chronicle up

# nginx and Chromium for the multi-replica and browser tests (Debian packages).
test-tools:
	bash scripts/ensure-test-tools.sh

# Starts PostgreSQL and RabbitMQ when they are down; under CI=true a service that
# cannot be reached is a failure.
services:
	bash scripts/ensure-services.sh

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: install
	$(BIN)/mypy

importlint: install
	$(BIN)/lint-imports

pytest: install services deploy-tools test-tools
	$(BIN)/pytest $(PYTEST_ARGS)

unit: install
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

test: lint typecheck importlint pytest

-include deploy/deploy.mk
