# Every target works from a fresh clone on a machine with only python3: the first one run
# creates .venv and installs the project with its dev extra.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test demo serve bench screenshots clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest

# The dashboard on the demo grid: three demo workers (one flaky) behind a router, with live
# traffic, in a scratch directory; q quits. Headless: lobstah-core serve --demo.
demo: $(STAMP)
	$(BIN)/lobstah-tui --demo

# This machine as a node of the grid: router on 17475, worker (Ollama) on 17474.
serve: $(STAMP)
	$(BIN)/lobstah-core serve

# Each benchmark prints its figures as ratios against a baseline measured in the same run.
bench: $(STAMP)
	$(BIN)/python bench/ledger.py
	$(BIN)/python bench/worker.py
	$(BIN)/python bench/router.py
	$(BIN)/python bench/tracker.py
	$(BIN)/python bench/tui.py

# The dashboard on the demo grid, rendered to SVG for the README.
screenshots: $(STAMP)
	$(BIN)/python screenshots/render.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info
