# Kamailio voicemail: set-up, checks and the lab.
#   make lab     install what is missing, then bring up the demo (see README)
#   make test    lint gates (ruff, mypy --strict) and the whole test suite
#   make bench   media and storage benchmark figures

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

# Debian packages the product and its tests run against.
APT_PACKAGES := postgresql python3-venv sox espeak-ng baresip-core sip-tester asterisk-core-sounds-en-wav \
  kamailio kamailio-python3-modules kamailio-sqlite-modules kamailio-postgres-modules \
  kamailio-presence-modules rtpengine-daemon docker-compose

.PHONY: setup system-packages venv lab test lint pytest bench clean

setup: system-packages venv

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

venv: $(VENV)/.installed

# The lab: Kamailio, rtpengine, a worker and an SMTP catcher on loopback (see README),
# then the demo call. `voicemail lab down` stops it.
lab: setup
	$(BIN)/voicemail lab up
	$(BIN)/voicemail lab demo

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

pytest:
	$(BIN)/pytest

test: lint pytest

bench:
	$(BIN)/python -m bench.media --calls 500 --seconds 15
	$(BIN)/python -m bench.storage

clean:
	rm -rf var/bench var/lab .mypy_cache .ruff_cache .pytest_cache
