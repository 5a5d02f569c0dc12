# Hearth: `make` lists the targets. Everything runs from the virtualenv in .venv,
# which `make venv` builds from requirements.lock (the other targets build it first).

PYTHON311 ?= python3.11
VENV      := .venv
PYTHON    := $(VENV)/bin/python
PIP       := $(PYTHON) -m pip --disable-pip-version-check
# Touched after a successful install: the venv is reinstalled only when the lock
# or pyproject.toml is newer than it.
STAMP     := $(VENV)/.hearth-installed
ARGS      ?=

.DEFAULT_GOAL := help
.PHONY: help venv run test lint bench migrate lock clean

help: ## list the targets
	@echo "usage: make TARGET [ARGS='...']"
	@echo
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-9s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

venv: $(STAMP) ## create .venv and install the locked dependencies (again only when they change)

$(PYTHON):
	$(PYTHON311) -m venv $(VENV)

$(STAMP): requirements.lock pyproject.toml | $(PYTHON)
	$(PIP) install -q -r requirements.lock
	$(PIP) install -q --no-deps -e .
	@touch $@

run: $(STAMP) ## start API, relay, worker, beat and Flower (embedded PostgreSQL/Redis unless configured)
	$(VENV)/bin/hearth run

test: $(STAMP) ## run the test suite against local or embedded services (ARGS are passed to pytest)
	$(PYTHON) -m ops.testrun $(ARGS)

# mypy checks the packages listed in pyproject.toml ([tool.mypy] files) that exist in this tree.
MYPY_PATHS := $(wildcard settings services api relay)

lint: $(STAMP) ## ruff (lint rules and format) and mypy, as configured in pyproject.toml
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy $(MYPY_PATHS)

bench: $(STAMP) ## run the benchmarks, each beside its baseline
	$(PYTHON) -m bench $(ARGS)

migrate: $(STAMP) ## apply pending database migrations
	$(VENV)/bin/hearth db upgrade

lock: ## re-resolve pyproject.toml's dependencies (with dev extras) and pin them in requirements.lock
	rm -rf .lock-venv
	$(PYTHON311) -m venv .lock-venv
	.lock-venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
	{ sed -n '/^#/p' requirements.lock; \
	  .lock-venv/bin/python -m pip freeze --disable-pip-version-check --exclude-editable; } > requirements.lock.new
	mv requirements.lock.new requirements.lock
	rm -rf .lock-venv

clean: ## remove caches and build leftovers (keeps .venv and the data in var/)
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +
	rm -rf .pytest_cache .hypothesis build dist *.egg-info .lock-venv
