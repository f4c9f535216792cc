# Two commands on a fresh machine: `make serve` and `make test`.
VENV    ?= .venv
PY      := $(VENV)/bin/python
PIP     := $(PY) -m pip
RUNTIME := $(VENV)/.installed-runtime
DEV     := $(VENV)/.installed-dev

.PHONY: install install-dev browser axe serve test test-fast bench bench-quick clean

# The accessibility check's engine (axe-core, from the npm registry), for the UI tests to inject
# into Chromium: a cache (.cache/ is ignored by git), never committed.
AXE_VERSION := 4.14.1
AXE         := .cache/axe/node_modules/axe-core/axe.min.js

$(VENV)/bin/python:
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel

# What the server needs to train and serve (no Ray, Playwright, moto or schemathesis).
# torch==2.13.0 is pinned in the [train] extra: pip takes the local CPU wheel.
$(RUNTIME): pyproject.toml | $(VENV)/bin/python
	$(PIP) install -q -e '.[train,text]'
	touch $@

# What the tests and benchmarks need on top: the scale-out stack, Playwright, fuzzing, data sets.
$(DEV): $(RUNTIME) pyproject.toml
	$(PIP) install -q -e '.[train,text,dev]'
	touch $@

install: $(RUNTIME)

install-dev: $(DEV)

# The UI tests drive Debian's Chromium (never a downloaded browser): installed when missing.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "Chromium is missing: run 'sudo apt-get install -y chromium' (the browser tests need /usr/bin/chromium)"; exit 1; \
	  fi; }

axe: $(AXE)

$(AXE):
	@command -v npm >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null; \
	  else \
	    echo "npm is missing: run 'sudo apt-get install -y npm' (the accessibility test needs axe-core)"; exit 1; \
	  fi; }
	npm install --prefix .cache/axe --no-save --no-audit --no-fund --silent axe-core@$(AXE_VERSION)

serve: install  ## start the server on 127.0.0.1:8000 with SQLite in ./dyntrain-data and a demo project
	$(VENV)/bin/dyntrain serve --data-dir dyntrain-data

test: install-dev browser axe  ## the whole suite (SQLite and PostgreSQL, end-to-end tests included)
	$(PY) -m pytest -q

test-fast: install-dev
	$(PY) -m pytest -q -m "not slow"

bench: install-dev  ## run every benchmark and update benchmarks/RESULTS.md
	for b in benchmarks/[a-z]*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

bench-quick: install-dev  ## every benchmark with --quick (CI: keeps them from rotting)
	for b in benchmarks/[a-z]*.py; do echo "== $$b"; $(PY) $$b --quick >/dev/null || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info
