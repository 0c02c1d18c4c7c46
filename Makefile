# Every target works from a fresh clone on a machine with only python3: the first one run
# creates .venv and installs the project with its dev extra.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test demo serve bench bench-quick clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest

# Until the worker lands, the demo shows what exists: an identity and its ledger balance,
# in a scratch home so it never touches ~/.lobstah.
demo: $(STAMP)
	LOBSTAH_HOME=$$(mktemp -d) sh -c '$(BIN)/lobstah-core keygen && $(BIN)/lobstah-core balance'

bench: $(STAMP)
	$(BIN)/python bench/ledger.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info
