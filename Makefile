# memrl: `make demo` runs the main job, `make test` runs the test suite. Both install into .venv first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.memrl-installed
ARGS ?=

.PHONY: setup test test-fast demo bench bench-quick test-vllm clean

# The stamp depends on the files that define the install, so a second `make setup` is a no-op.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev,dense]"
	touch $(STAMP)

setup: $(STAMP)

test: setup
	$(BIN)/python -m pytest -q -x --durations=15 $(ARGS)

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow" $(ARGS)

demo: setup
	$(BIN)/memrl demo $(ARGS)

bench: setup
	$(BIN)/memrl bench $(ARGS)

bench-quick: setup
	$(BIN)/memrl bench --quick $(ARGS)

clean:
	rm -rf $(VENV) runs .pytest_cache
