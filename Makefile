# Two commands for a newcomer: `make run` and `make test` (see README.md).
# The venv is (re)installed only when a requirements file or pyproject.toml
# changed since the last install, so the second run is fast.

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install run test test-fast bench lint browser services clean

install: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip "setuptools>=77"
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $(STAMP)

# Debian's headless Chromium for the real-browser tests (no browser download).
browser:
	@bash scripts/ensure-chromium.sh

# Debian's redis-server, postgresql and nginx for the multi-process tests, which start their
# own servers on free ports in temporary folders (nothing runs as a system service).
services:
	@bash scripts/ensure-services.sh

run: install
	$(PY) -m chatbot serve

test: install browser services
	$(PY) -m pytest

test-fast: install
	$(PY) -m pytest -m "not slow and not browser"

# services: the nginx-in-front-of-3-processes section needs Redis and nginx.
bench: install services
	$(PY) -m chatbot bench

lint: install
	$(VENV)/bin/ruff check chatbot embeddings evaluation curation tests
	$(VENV)/bin/ruff format --check chatbot embeddings evaluation curation tests
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .faqbot
