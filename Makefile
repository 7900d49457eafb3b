# The README's two commands are `make demo` and `make test`; everything else is their parts.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: system setup demo test lint down

system:  ## Debian packages: redis-server, Java 17, Maven (skipped when present)
	bash infra/install-system.sh

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

setup: system $(VENV)/.installed

demo: setup  ## bring the stack up and push events HTTP → Kafka → Faust → ClickHouse
	$(BIN)/tributary up
	$(BIN)/tributary demo --events 1000 --users 10

test: setup  ## lint, then the default test suite against real services
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest

down:
	$(BIN)/tributary down
