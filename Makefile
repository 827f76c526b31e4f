# Dossier — `make run` to try it, `make test` to test it.
SHELL := /bin/bash
# The interpreter the venv is made from: the system's own CPython when it is 3.11 or newer
# and can make a venv, else the first python3 on the PATH (PYTHON=… chooses). Distribution
# builds are compiled with profile-guided and link-time optimisation into one binary; a
# build without them (pyenv's default: shared libpython, no PGO) runs the exports' Python
# path 1.4× slower (docs/performance.md, "The interpreter").
PYTHON ?= $(or $(shell for p in /usr/bin/python3 python3; do \
  $$p -c 'import sys, ensurepip; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1 && { echo $$p; break; }; \
  done),python3)
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
PYTEST_ARGS ?=

.PHONY: run test lint fmt check bench migrate sysdeps browser office screenshots clean

$(PY):
	@mkdir -p var
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Dossier needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.installed-base: pyproject.toml | $(PY)
	$(PIP) install --quiet -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(PY)
	$(PIP) install --quiet -e '.[dev]'
	@touch $@ $(VENV)/.installed-base

# WeasyPrint needs Pango; on Debian/Ubuntu install it when it is missing (root or sudo).
sysdeps:
	@if ! /sbin/ldconfig -p 2>/dev/null | grep -q 'libpango-1.0.so'; then \
	  echo "Installing Pango for WeasyPrint (apt-get install libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core \
	    || { echo "Please install libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core"; exit 1; }; \
	fi

# Debian's Chromium for the admin browser tests (Playwright drives it; no browser download).
browser:
	@command -v chromium >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium; }

# LibreOffice, for the slow test that opens our XLSX files in a reader we did not write.
office:
	@command -v soffice >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq libreoffice-calc-nogui; }

migrate: $(VENV)/.installed-base
	@mkdir -p var
	$(PY) manage.py migrate --noinput

run: $(VENV)/.installed-base sysdeps migrate
	$(PY) manage.py seed_demo
	$(PY) bin/run.py

test: $(VENV)/.installed-dev sysdeps
	@mkdir -p var
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .

fmt: $(VENV)/.installed-dev
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

check: lint
	@mkdir -p var
	DJANGO_SETTINGS_MODULE=config.settings_test $(PY) manage.py makemigrations --check --dry-run
	DJANGO_SETTINGS_MODULE=config.settings_test $(PY) manage.py check

$(VENV)/.installed-bench: pyproject.toml | $(PY)
	$(PIP) install --quiet -e '.[dev,bench]'
	@touch $@ $(VENV)/.installed-dev $(VENV)/.installed-base

ROWS ?= 100000
ROUNDS ?= 1
# Every export format on SQLite and PostgreSQL beside its anchor: make bench ROWS=1000000 [ROUNDS=3]
bench: $(VENV)/.installed-bench
	$(PY) bench/run_all.py --cases $(ROWS) --rounds $(ROUNDS)

# The README's screenshots (docs/screenshots/) and the sample board report pages
# (docs/board-report/), from a throwaway demo database: `make screenshots`.
screenshots: $(VENV)/.installed-dev sysdeps browser
	$(PY) bin/screenshots.py

clean:
	rm -rf var/test_db.sqlite3* .pytest_cache .mypy_cache .ruff_cache
