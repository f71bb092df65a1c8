# Kamailio voicemail: set-up, checks and the lab.
#   make lab     install what is missing, then bring up the demo (see README)
#   make test    lint gates (ruff, mypy --strict) and the whole test suite
#   make bench   media and storage benchmark figures

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

# Debian packages the product and its tests run against.
APT_PACKAGES := postgresql python3-venv sox espeak-ng baresip-core sip-tester asterisk-core-sounds-en-wav

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
	$(BIN)/pip install -q -e '.[dev]' 2>&1 | grep -vE 'BuildBackendWarning|^ |^$$|!!' || true
	$(BIN)/voicemail --version
	touch $@

venv: $(VENV)/.installed

# What the lab is today: the message store and its operator commands. Kamailio, rtpengine
# and the media worker join it as they are built (see README, "Status").
LAB := $(CURDIR)/var/lab
LAB_STORE := fs://$(LAB)/spool
lab: setup
	mkdir -p $(LAB)
	$(BIN)/voicemail storage init $(LAB_STORE)
	espeak-ng -w $(LAB)/hello-espeak.wav "Hi Bob, this is Alice. Please call me back."
	sox $(LAB)/hello-espeak.wav -r 8000 -c 1 -b 16 $(LAB)/hello.wav
	$(BIN)/voicemail mailbox import --storage $(LAB_STORE) \
	  --sender '"Alice" <sip:alice@lab.example>' lab.example bob $(LAB)/hello.wav
	$(BIN)/voicemail mailbox list --storage $(LAB_STORE) lab.example bob
	@echo "spool: $(LAB)/spool (SEMS layout: <domain>/<user>/<ts>+<sender>.wav)"
	@echo "try:   $(BIN)/voicemail mailbox --help"

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
