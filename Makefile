# The quick start is two commands: `make run` and `make test`.
# Both install what is missing first (uv, then the environment from uv.lock).

SHELL := /bin/bash
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON_PREFERENCE := only-system
PYTHON ?= python3
# uv from PATH, else the one pip installs for this Python (`python3 -m uv`).
UV := $(shell command -v uv 2>/dev/null)
ifeq ($(UV),)
UV := $(PYTHON) -m uv
endif
RUN := $(UV) run --frozen

.PHONY: uv peers run test install install-dev migrate storage-setup gc bench lint fmt compose-check clean help bench-side

help:
	@echo "make run    install what is missing, migrate, serve on http://127.0.0.1:8000 (HOST/PORT)"
	@echo "make test   the whole suite (SQLite always; PostgreSQL with TEST_DATABASE_URL; S3 via moto and LocalStack; Chromium)"
	@echo "make lint   ruff (lint + format check) and mypy strict on imagehost/"
	@echo "make bench  the benchmarks in bench/ (they print figures)"
	@echo "make bench-side  serving, upload and listing beside nginx and bare aiohttp (wrk, taskset)"

uv:
	@$(UV) --version >/dev/null 2>&1 || { echo "uv not found: installing it from PyPI with $(PYTHON) -m pip"; \
	  $(PYTHON) -m pip install --quiet uv || $(PYTHON) -m pip install --quiet --user --break-system-packages uv; }

.venv/.installed: pyproject.toml uv.lock | uv
	$(UV) sync --frozen --python 3.11 --no-dev
	@touch $@

.venv/.installed-dev: pyproject.toml uv.lock | uv
	$(UV) sync --frozen --python 3.11
	@touch $@ .venv/.installed

# The strict S3 peer of the tests (LocalStack, Python 3.13) in .peers/; once installed, a no-op.
peers: | uv
	@UV="$(UV)" bash tests/peers/install-localstack.sh

install: .venv/.installed
install-dev: .venv/.installed-dev

migrate: install
	$(RUN) --no-dev imagehost migrate

run: migrate
	$(RUN) --no-dev imagehost serve

storage-setup: install
	$(RUN) --no-dev imagehost storage-setup

gc: install
	$(RUN) --no-dev imagehost gc

test: install-dev peers
	$(RUN) pytest $(PYTEST_ARGS)

# Lint, format and types: part of the suite (CI runs it before the tests).
lint: install-dev
	$(RUN) ruff check imagehost tests bench
	$(RUN) ruff format --check imagehost tests bench
	$(RUN) mypy

# Rewrite what ruff can fix by itself (imports, formatting).
fmt: install-dev
	$(RUN) ruff check --fix imagehost tests bench
	$(RUN) ruff format imagehost tests bench

bench: install-dev
	$(RUN) python bench/run_all.py

# imagehost beside nginx and bare aiohttp handlers (issue 14); BENCH_ARGS="--duration 2 --rounds 1" for a quick run.
bench-side: install-dev
	$(RUN) python bench/side_by_side.py $(BENCH_ARGS)

compose-check:
	SECRET_KEY=$$(printf 'x%.0s' {1..48}) docker-compose -f docker-compose.yml config -q

clean:
	rm -rf .venv .pytest_cache test-artifacts
