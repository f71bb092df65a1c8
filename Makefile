# Kamailio voicemail: set-up, checks and the lab. `make help` prints this list.
#   make lab              install what is missing, then bring up the demo (docs/operator.md)
#   make test             set-up, lint gates and the whole test suite (what CI runs)
#   make unit             set-up, then the pure tests only (no servers, no daemons): seconds
#   make lint             ruff check, ruff format --check and mypy --strict
#   make pytest           set-up, then the whole test suite without the lint gates
#   make bench            media, load, storage, audio and API benchmark figures (docs/benchmarks.md)
#   make setup            system-packages and venv
#   make system-packages  the Debian packages below (installs them when run as root)
#   make venv             .venv/ with the project and its dev and lab extras
#   make clean            remove benchmark and lab data and the tools' caches

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

# Debian packages the product and its tests run against.
APT_PACKAGES := postgresql python3-venv sox espeak-ng baresip-core sip-tester asterisk-core-sounds-en-wav \
  kamailio kamailio-python3-modules kamailio-sqlite-modules kamailio-postgres-modules \
  kamailio-presence-modules rtpengine-daemon docker-compose chromium chromium-driver

.PHONY: help setup system-packages venv lab test unit lint pytest bench clean

# Integration tests start real Kamailio, rtpengine, baresip, PostgreSQL, SMTP servers or
# workers; everything else is a unit test (pyproject's markers).
UNIT_MARKS := not integration and not postgres

# A plain `make` sets up, as it always did.
.DEFAULT_GOAL := setup

# The header above, without the comment signs.
help:
	@sed -n 's/^#   //p' $(firstword $(MAKEFILE_LIST))

# Everything the tests and the lab need: Debian packages, then the venv.
setup: system-packages venv

# Checks each Debian package; installs the missing ones as root, else names them.
system-packages:
	@missing=""; \
	for pkg in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$pkg 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$pkg"; \
	done; \
	if [ -z "$$missing" ]; then echo "system packages: all present"; exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then echo "missing Debian packages:$$missing (run as root or: sudo apt-get install$$missing)"; exit 1; fi; \
	echo "installing:$$missing"; \
	export DEBIAN_FRONTEND=noninteractive; \
	apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Reinstalled only when the project's metadata changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev,lab]' 2>&1 | grep -vE 'BuildBackendWarning|^ |^$$|!!' || true
	$(BIN)/voicemail --version
	touch $@

# The project in .venv/, editable, with the dev and lab extras.
venv: $(VENV)/.installed

# The lab: Kamailio, rtpengine, a worker, the API, SMTP and webhook catchers on loopback,
# then the demo call. `voicemail lab down` stops it.
lab: setup
	$(BIN)/voicemail lab up
	$(BIN)/voicemail lab demo

# The gates CI runs: lint findings, formatting, types.
lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The whole suite; integration tests start their own servers on free loopback ports.
# The 25 slowest tests are listed at the end: the suite has a 20-minute budget.
pytest: setup
	$(BIN)/pytest --durations=25

# What CI and the README run: set-up, lint, then every test.
test: setup lint pytest

# The pure tests (no servers, no Kamailio/rtpengine/baresip/PostgreSQL processes).
unit: setup
	$(BIN)/pytest -m "$(UNIT_MARKS)" -q

# Benchmark figures (docs/benchmarks.md): 500 calls against one worker, real voicemail
# calls from outside at 100 and 200 at once and 600 over two worker processes
# (bench/README.md), then storage, audio and the HTTP API (a 10,000-message mailbox
# listed by 50 clients, audio, MP3 conversion).
bench: setup
	$(BIN)/python -m bench.media --calls 500 --seconds 15
	$(BIN)/python -m bench.load --calls 100,200 --seconds 20
	$(BIN)/python -m bench.load --calls 600 --seconds 20 --processes 2
	$(BIN)/python -m bench.storage
	$(BIN)/python -m bench.audio
	$(BIN)/python -m bench.api

# Generated data and caches; .venv/ stays.
clean:
	rm -rf var/bench var/lab .mypy_cache .ruff_cache .pytest_cache
