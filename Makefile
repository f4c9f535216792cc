# Two commands on a fresh machine: `make serve` and `make test`.
VENV    ?= .venv
PY      := $(VENV)/bin/python
PIP     := $(PY) -m pip
STAMP   := $(VENV)/.installed

.PHONY: install serve test test-fast bench bench-quick clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel
	# torch==2.13.0 is pinned in the [train] extra: pip takes the local CPU wheel.
	$(PIP) install -q -e '.[train,text,dev]'
	touch $(STAMP)

install: $(STAMP)

serve: install  ## start the server on 127.0.0.1:8000 with SQLite in ./dyntrain-data and a demo project
	$(VENV)/bin/dyntrain serve --data-dir dyntrain-data

test: install  ## the whole suite (SQLite and PostgreSQL, end-to-end tests included)
	$(PY) -m pytest -q

test-fast: install
	$(PY) -m pytest -q -m "not slow"

bench: install  ## run every benchmark and update benchmarks/RESULTS.md
	for b in benchmarks/[a-z]*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

bench-quick: install  ## every benchmark with --quick (CI: keeps them from rotting)
	for b in benchmarks/[a-z]*.py; do echo "== $$b"; $(PY) $$b --quick >/dev/null || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info
