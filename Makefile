# Two commands for a newcomer: `make run` (the service with demo data) and `make test` (every check).
# Both create .venv, install the pinned requirements, and start an embedded PostgreSQL + pgvector and Redis
# under var/ unless DATABASE_URL / REDIS_URL point at servers.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q

.PHONY: run test bench install install-dev browser locale lint fmt stop clean

$(VENV)/bin/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is needed, found " + sys.version.split()[0]'
	$(PYTHON) -m venv $(VENV)

$(VENV)/.run-deps: requirements.txt requirements-embedded.txt | $(VENV)/bin/python
	$(PIP) install -r requirements.txt -r requirements-embedded.txt
	@touch $@

$(VENV)/.dev-deps: requirements.txt requirements-embedded.txt requirements-dev.txt | $(VENV)/bin/python
	$(PIP) install -r requirements-dev.txt
	@touch $@ $(VENV)/.run-deps

install: $(VENV)/.run-deps
install-dev: $(VENV)/.dev-deps

## run: install, start the layers, migrate, load demo data, serve on $HOST:$PORT (default 127.0.0.1:8000)
run: install
	$(PY) -m memory_admin.runner run

## test: install, start separate test layers, then ruff, mypy, makemigrations --check and pytest (ARGS=... for pytest)
test: install-dev browser locale
	$(PY) -m memory_admin.runner test $(ARGS)

## bench: start the service on its own embedded servers under var/bench/, drive it, print the figures and
## write bench/results/latest.json (ARGS="--full" for the long run, ARGS="--profile" to sample with py-spy)
bench: install-dev
	$(PY) -m bench $(ARGS)

## browser: Debian's Chromium for the Playwright tests (installed with apt when it is missing)
browser:
	@sh scripts/ensure-chromium.sh

## locale: the system's en_US.UTF-8 locale for the collation test (generated with localedef when missing)
locale:
	@sh scripts/ensure-test-locale.sh

lint: install-dev
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

fmt: install-dev
	$(VENV)/bin/ruff check --fix . && $(VENV)/bin/ruff format .

## stop: from another shell, stop a running `make run` (its processes and its servers), as Ctrl-C does there
stop:
	$(PY) -m memory_admin.runner stop run

clean:
	$(PY) -m memory_admin.runner clean test
