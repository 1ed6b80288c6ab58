# Everything runs inside .venv, created on first use from the system python3.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

CONFIGS := $(wildcard configs/*.yaml)

.PHONY: install lint test reproduce bench clean

install: $(STAMP)

# Re-installs only when pyproject.toml changes, so a second `make install` is quick.
# pip byte-compiles what it installs, and must: this machine's environment sets
# PYTHONDONTWRITEBYTECODE=1, so nothing else writes .pyc files, and without them
# every process's TensorFlow import took 17 s instead of 8 (measured with
# --no-compile, which saved 40 s of install and cost the suite more).
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# ruff keeps the code tidy: lint rules and formatting, both from pyproject.toml.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Two workers: the suite is mostly TensorFlow start-up and XLA compilation, one per test.
test: lint
	$(BIN)/pytest -q -n 2

# Configs that measure time run last and alone, one run at a time, so that nothing
# else competes for the cores while they are timed. memory.yaml measures peak memory,
# each run in a fresh process of its own, which a neighbour does not disturb: it
# runs with the untimed ones.
TIMED := configs/batch_time.yaml configs/cost.yaml configs/training_time.yaml
UNTIMED := $(filter-out $(TIMED),$(CONFIGS))

# Every config from scratch (--force), into results/<config name>/: the untimed
# ones on two worker processes sharing one queue (runs of one shape trained as one
# group, the same numbers as one at a time, tested), then the timed ones; then
# results/REPORT.md, the wall time of each part and the peak memory.
reproduce: $(STAMP)
	@set -e; started=$$(date +%s); \
	$(BIN)/stateful-lab run --quiet --force --jobs 2 $(UNTIMED); \
	untimed=$$(( $$(date +%s) - started )); \
	$(BIN)/stateful-lab run --quiet --force $(TIMED); \
	$(BIN)/stateful-lab report results; \
	echo "reproduce: untimed configs $$untimed s, all $$(( $$(date +%s) - started )) s"

# Keras fit, plain and tuned, against the lab's single and grouped runs; writes results/bench.md.
bench: $(STAMP)
	$(BIN)/python -m stateful_lab.diagnostics.bench

clean:
	rm -rf $(VENV) build *.egg-info
