# Hearth: `make` lists the targets. Everything runs from the virtualenv in .venv, which `make venv`
# builds from requirements-dev.lock (the runtime lock, requirements.lock, plus the tools to test,
# benchmark, profile and lint); the other targets build it first.

PYTHON311 ?= python3.11
VENV      := .venv
PYTHON    := $(VENV)/bin/python
PIP       := $(PYTHON) -m pip --disable-pip-version-check
# Touched after a successful install: the venv is reinstalled only when a lock
# or pyproject.toml is newer than it.
STAMP     := $(VENV)/.hearth-installed
LOCKS     := requirements.lock requirements-dev.lock
ARGS      ?=

.DEFAULT_GOAL := help
.PHONY: help venv run test lint bench migrate lock clean

help: ## list the targets
	@echo "usage: make TARGET [ARGS='...']"
	@echo
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-9s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

venv: $(STAMP) ## create .venv and install the locked runtime and dev dependencies (again only when they change)

$(PYTHON):
	$(PYTHON311) -m venv $(VENV)

$(STAMP): $(LOCKS) pyproject.toml | $(PYTHON)
	$(PIP) install -q -r requirements-dev.lock
	$(PIP) install -q --no-deps -e .
	@touch $@

run: $(STAMP) ## start API, relay, worker, beat and Flower (embedded PostgreSQL/Redis unless configured)
	$(VENV)/bin/hearth run

test: lint ## make lint, then the test suite against local or embedded services (ARGS are passed to pytest)
	$(PYTHON) -m ops.testrun $(ARGS)

lint: $(STAMP) ## ruff (lint rules and format) and mypy (the packages in pyproject.toml's [tool.mypy] files)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: $(STAMP) ## run the benchmarks, each beside its baseline
	$(PYTHON) -m bench $(ARGS)

migrate: $(STAMP) ## apply pending database migrations
	$(VENV)/bin/hearth db upgrade

# The runtime lock is resolved alone (what the image installs); the dev lock is resolved on top of it,
# constrained to the same versions, and lists only what the runtime lock does not.
LOCK_PIP    := .lock-venv/bin/python -m pip --disable-pip-version-check
LOCK_FREEZE := $(LOCK_PIP) freeze --exclude-editable

lock: ## re-resolve pyproject.toml's dependencies: runtime in requirements.lock, dev extras in requirements-dev.lock
	rm -rf .lock-venv
	$(PYTHON311) -m venv .lock-venv
	$(LOCK_PIP) install -q -e .
	{ sed -n '/^#/p' requirements.lock; $(LOCK_FREEZE); } > requirements.lock.new
	$(LOCK_PIP) install -q -c requirements.lock.new -e '.[dev]'
	{ sed -n '/^#/p;/^-r /p' requirements-dev.lock; \
	  $(LOCK_FREEZE) | grep -vxFf requirements.lock.new; } > requirements-dev.lock.new
	mv requirements.lock.new requirements.lock
	mv requirements-dev.lock.new requirements-dev.lock
	rm -rf .lock-venv

clean: ## remove caches and build leftovers (keeps .venv and the data in var/)
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +
	rm -rf .pytest_cache .hypothesis .mypy_cache .ruff_cache build dist *.egg-info .lock-venv
