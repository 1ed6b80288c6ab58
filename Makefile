# Everything runs inside .venv, created on first use from the system python3.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

CONFIGS := $(wildcard configs/*.yaml)

.PHONY: install test reproduce clean

install: $(STAMP)

# Re-installs only when pyproject.toml changes, so a second `make install` is quick.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/pytest -q

reproduce: $(STAMP)
	@set -e; for config in $(CONFIGS); do \
		echo "== $$config"; \
		$(BIN)/stateful-lab run --quiet $$config; \
	done

clean:
	rm -rf $(VENV) build *.egg-info
