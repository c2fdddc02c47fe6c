# The front door. `make study` and `make test` each set up everything they need on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export KEDRO_DISABLE_TELEMETRY := 1
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: setup study test bench viz clean-data

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

setup: $(BIN)/.installed  ## create .venv and install the project with its test tools

study: setup  ## run the default study (quick profile, CPU) into data/, report in data/08_reporting/report.html
	$(BIN)/kedro run

test: setup  ## lint (ruff check + format check), then run the test suite
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/python -m pytest

bench: setup  ## run the benchmarks (tables printed, JSON in benchmarks/results/)
	$(BIN)/python benchmarks/run_all.py

viz: setup  ## build the static pipeline graph into build/ (open build/index.html)
	$(BIN)/kedro viz build
