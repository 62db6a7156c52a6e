# mailbot: `make run` runs the daemon (the bundled demo when there is no config.toml),
# `make test` installs what the tests need and runs the whole suite.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DEBIAN_PACKAGES := dovecot-imapd dovecot-lmtpd openssl neomutt

.PHONY: all run test lint typecheck unit deps debian-deps venv bench clean

all: test

# Debian packages for the private Dovecot the integration tests start (root only;
# otherwise say what to install).
debian-deps:
	@missing=$$(for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
	  echo "installing from Debian:" $$missing; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	else echo "please run: sudo apt-get install -y" $$missing; exit 1; fi

# Project-local virtual environment, rebuilt when pyproject.toml changes.
$(BIN)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $@

venv: $(BIN)/.installed

deps: debian-deps venv

run: venv
	$(BIN)/mailbot run

lint: venv
	$(BIN)/ruff check mailbot tests $(wildcard bench)
	$(BIN)/mypy

test: deps lint
	$(BIN)/pytest -q

unit: venv
	$(BIN)/pytest -q -m "not stack"

bench: deps
	$(BIN)/python -m bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache *.egg-info
