# Entry points: `make demo` (the whole chain on simulated LST-1 events) and `make test`
# (the full suite on Python 3.11 + ctapipe 0.28, the torch-free tests on Python 3.12 +
# the newest ctapipe without torch, then lint).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU wheel; a plain `torch` requirement would pull the multi-GB CUDA build
TORCH ?= torch==2.13.0

# the newest supported ctapipe line, in an environment without torch
PYTHON_LATEST ?= $(shell for p in python3.12 "$$(pyenv root 2>/dev/null)"/versions/3.12*/bin/python3.12; do \
	"$$p" -c "" >/dev/null 2>&1 && { command -v "$$p"; break; }; done)
VENV_LATEST ?= .venv-latest
BIN_LATEST := $(VENV_LATEST)/bin
CTAPIPE_LATEST ?= ctapipe[eventio]>=0.32,<0.33

# test files that need neither torch nor onnx (the latest environment runs only these)
TORCH_FREE_TESTS ?= \
	tests/test_torch_free.py \
	tests/test_config_tool.py \
	tests/test_tool_config.py \
	tests/test_atomic.py \
	tests/test_compat.py \
	tests/test_fast_geometry.py \
	tests/test_lattice.py \
	tests/test_evaluation_metrics.py \
	tests/test_evaluation_baseline.py \
	tests/test_benchmark_tool.py \
	tests/test_detection.py \
	tests/test_dl3.py \
	tests/test_simulation_physics.py \
	tests/test_simulation_parallel.py \
	tests/test_simulation_speedups.py \
	tests/test_simulation_tool.py \
	tests/test_simulation_baseline.py \
	tests/test_domains.py \
	tests/test_add_nsb.py \
	tests/test_lstchain.py

.PHONY: env env-latest test test-full test-latest lint demo clean-demo

env: $(BIN)/.installed

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[all,test]"
	touch $@

env-latest: $(BIN_LATEST)/.installed

$(BIN_LATEST)/.installed: pyproject.toml
	@test -n "$(PYTHON_LATEST)" || { echo "no python3.12 found: set PYTHON_LATEST=/path/to/python3.12"; exit 1; }
	$(PYTHON_LATEST) -m venv $(VENV_LATEST)
	$(BIN_LATEST)/pip install -q --upgrade pip
	$(BIN_LATEST)/pip install -q -e ".[sim,benchmark,test]" "$(CTAPIPE_LATEST)"
	@if $(BIN_LATEST)/python -c "import torch" >/dev/null 2>&1; then \
		echo "torch got into $(VENV_LATEST): it must stay torch-free"; exit 1; fi
	touch $@

# the 3.11 suite (its cross-version test runs the latest environment's ctapipe-process,
# so that environment is built first), the latest line, then lint
test: env-latest test-full test-latest lint

# test files run TEST_WORKERS at a time (pytest-xdist, one file per worker: module fixtures are
# built once); most tests keep one core busy, so two workers roughly halve the suite on 2 cores
TEST_WORKERS ?= 2
PARALLEL := $(if $(filter-out 0 1,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadfile)

test-full: env env-latest
	GAMMALEARN_LATEST_VENV=$(abspath $(VENV_LATEST)) $(BIN)/python -m pytest -q -ra --durations=10 $(PARALLEL) \
		$(PYTEST_ARGS)

# the slow end-to-end tests and the costliest simulation run only on the full suite: they
# exercise the same code, and CI's 2 cores have to fit both lines
LATEST_SKIP ?= -m "not slow" --deselect tests/test_simulation_tool.py::test_subarray_from_file

test-latest: env-latest
	$(BIN_LATEST)/python -m pytest -q -ra -p no:cacheprovider --durations=10 $(PARALLEL) $(LATEST_SKIP) \
		$(PYTEST_ARGS) $(TORCH_FREE_TESTS)

lint: env
	$(BIN)/ruff check .

# the quickstart (scripts/demo.sh): outputs under demo/; a smoke version with
# `make demo DEMO_EVENTS=300 DEMO_EPOCHS=1`
DEMO_EVENTS ?=
DEMO_EPOCHS ?=

demo: env
	BIN=$(BIN) DEMO_EVENTS=$(DEMO_EVENTS) DEMO_EPOCHS=$(DEMO_EPOCHS) bash scripts/demo.sh

clean-demo:
	rm -rf demo
