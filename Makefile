# kmschaos — `make demo` runs the scenario catalogue, `make test` runs the tests.
# Both set everything up first (venv, dependencies, Toxiproxy).

PYTHON     ?= python3
VENV       := .venv
BIN        := $(VENV)/bin
TOPOLOGY   ?= scenarios/topologies/one-site.yaml
TIME_SCALE ?= 0.05
WORKERS    ?= 2
REPORT_DIR ?= reports/demo

.PHONY: setup demo test test-unit test-scenarios up down status bench lint clean help

help:
	@echo "make setup   create $(VENV), install kmschaos and Toxiproxy v2.12.0"
	@echo "make demo    run the scenario catalogue (local backend), print verdicts + report path"
	@echo "make test    unit, integration and scenario tests (time scale $(TIME_SCALE), $(WORKERS) workers)"
	@echo "make up      start $(TOPOLOGY) and leave it running (TIME_SCALE=... to override)"
	@echo "make down    stop it;  make status   show endpoints"
	@echo "make bench   benchmarks -> bench/results/"
	@echo "make lint    ruff + mypy"

setup: $(VENV)/.installed
	@$(BIN)/python -m harness.toolchain install-toxiproxy

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

demo: setup
	$(BIN)/kmschaos run -n $(WORKERS) --time-scale $(TIME_SCALE) --report-dir $(REPORT_DIR)

test: setup
	$(BIN)/python -m pytest tests scenarios -n $(WORKERS) --kms-time-scale $(TIME_SCALE) \
		--kms-report-dir reports/test -q -rs

test-unit: setup
	$(BIN)/python -m pytest tests -m "not integration" -q

up: setup
	$(BIN)/kmschaos up $(TOPOLOGY) --time-scale $(TIME_SCALE)

down: setup
	$(BIN)/kmschaos down

status: setup
	$(BIN)/kmschaos status

bench: setup
	$(BIN)/python bench/run.py

lint: setup
	$(BIN)/ruff check harness tests scenarios bench
	$(BIN)/ruff format --check harness tests scenarios bench
	$(BIN)/mypy harness

clean:
	-$(BIN)/kmschaos down --all
	rm -rf reports .kmschaos
