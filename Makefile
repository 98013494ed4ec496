# Two entry points: `make demo` (the whole chain on simulated LST-1 events) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU wheel; a plain `torch` requirement would pull the multi-GB CUDA build
TORCH ?= torch==2.13.0

.PHONY: env test demo clean-demo

env: $(BIN)/.installed

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[test]"
	touch $@

test: env
	$(BIN)/python -m pytest -q -ra $(PYTEST_ARGS)

# the quickstart (scripts/demo.sh): outputs under demo/; a smoke version with
# `make demo DEMO_EVENTS=300 DEMO_EPOCHS=1`
DEMO_EVENTS ?=
DEMO_EPOCHS ?=

demo: env
	BIN=$(BIN) DEMO_EVENTS=$(DEMO_EVENTS) DEMO_EPOCHS=$(DEMO_EPOCHS) bash scripts/demo.sh

clean-demo:
	rm -rf demo
