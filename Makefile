# The README's two commands are `make demo` and `make test`; everything else is their parts.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: system setup triton-venv jaeger demo test lint down images

system:  ## Debian packages: redis-server, Java 17, Maven, docker.io, busybox, haproxy, docker-compose, nodejs, npm, mmdebstrap, chromium, faketime (skipped when present)
	bash infra/install-system.sh

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

# Triton's own environment: nvidia-pytriton needs numpy<2; the model ships in a wheel.
.venv-triton/.installed: infra/triton/requirements.txt
	$(PYTHON) -m venv .venv-triton
	.venv-triton/bin/pip install -q --upgrade pip
	.venv-triton/bin/pip install -q -r infra/triton/requirements.txt
	touch $@

triton-venv: .venv-triton/.installed

# The JavaScript example subscriber's packages (kafkajs, Ajv), from package-lock.json.
docs/examples/js/node_modules/.installed: docs/examples/js/package-lock.json
	npm ci --prefix docs/examples/js --no-audit --no-fund --silent
	touch $@

# noVNC, which the gateway serves to the desktop viewer page, from package-lock.json.
gateway/static/node_modules/.installed: gateway/static/package-lock.json
	npm ci --prefix gateway/static --no-audit --no-fund --silent
	touch $@

# Chart.js, which the admin dashboard serves for its charts, from package-lock.json.
dashboard/static/node_modules/.installed: dashboard/static/package-lock.json
	npm ci --prefix dashboard/static --no-audit --no-fund --silent
	touch $@

# Jaeger, built from Go modules with the Go toolchain into the cache (~5 min, once).
jaeger: $(VENV)/.installed
	$(BIN)/python -m infra.local.jaeger

setup: system $(VENV)/.installed triton-venv docs/examples/js/node_modules/.installed gateway/static/node_modules/.installed dashboard/static/node_modules/.installed jaeger

demo: setup  ## bring the stack up and push events HTTP → Kafka → stream agents → ClickHouse
	$(BIN)/tributary up
	$(BIN)/tributary demo --events 1000 --users 10

test: setup  ## lint, then the default test suite against real services
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest

images: setup  ## the container images, built here from Debian packages and PyPI (no registry)
	$(BIN)/tributary images build

down:
	$(BIN)/tributary down
