# One entry point for people and CI. Everything installs into .venv on first use.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
BENCH_STAMP := $(VENV)/.bench-installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: install gen lint typecheck check release test bench demo clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

gen: install
	$(BIN)/aisdk gen

lint: install
	$(BIN)/buf lint

typecheck: install
	$(BIN)/mypy runtime codegen compat aisdk generated
	$(BIN)/mypy --config-file examples/triage/mypy.ini

# Lint, breaking and subject changes against every released baseline, drift
# of generated/, and the compatibility properties (docs/versioning.md).
check: install
	$(BIN)/aisdk check

# Cut the baseline of a contract release: make release VERSION=v1.1.0
release: install
	$(if $(VERSION),,$(error usage: make release VERSION=vMAJOR.MINOR.PATCH))
	$(BIN)/aisdk release $(VERSION)

# Two workers (pytest-xdist), each a test session with servers of its own:
# about 5 minutes instead of 9 on two cores (docs/testing.md).
test: typecheck check
	$(BIN)/python -m pytest -n 2
	cd examples/triage && ../../$(BIN)/python -m pytest

# The benchmark beside raw nats-py and FastStream (docs/performance.md); it
# needs the bench extra, which `make test` does not install.
$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,bench]'
	rm -f $(VENV)/.bench-installed-*
	touch $@

bench: $(BENCH_STAMP)
	$(BIN)/aisdk bench --plot docs/performance-latency.png

demo: install
	$(BIN)/aisdk demo

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .hypothesis
