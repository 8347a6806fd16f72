# The README's two commands are the contract: `make demo` and `make test` work on a fresh
# machine with only Python and the package registry.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml setup.py pipeline/vascalc/core/_ckernel.c | sha256sum | cut -c1-12)
TEST_STAMP := $(STAMP)-test
PHANTOMS := sample_data/phantoms

.PHONY: demo test docs venv sample-data bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# make demo: the runtime dependencies only (what `pip install vascalc` gives)
$(STAMP): $(BIN)/python pyproject.toml setup.py pipeline/vascalc/core/_ckernel.c
	$(BIN)/python -m pip install --quiet -e .
	$(BIN)/python -m compileall -q pipeline/vascalc  # bytecode now: the first run starts as fast as later ones
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

# make test: the runtime, the test tooling and the docs builder
$(TEST_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[test,docs]"
	touch $(TEST_STAMP)

venv: $(STAMP)

$(PHANTOMS)/manifest.csv: $(STAMP) sample_data/generate.py sample_data/phantom.py sample_data/dicom_writer.py
	$(BIN)/python -m sample_data.generate --out $(PHANTOMS)

sample-data: $(PHANTOMS)/manifest.csv

demo: $(STAMP)
	$(BIN)/vascalc demo --out results/demo --data $(PHANTOMS)

test: $(TEST_STAMP)
	$(BIN)/python -m mypy
	$(BIN)/python -m sphinx -W --keep-going -q -b html docs docs/_build/html
	$(BIN)/python -m pytest -q

docs: $(TEST_STAMP)
	$(BIN)/python -m sphinx -W --keep-going -q -b html docs docs/_build/html
	@echo "docs in docs/_build/html/index.html"

bench: $(TEST_STAMP)
	$(BIN)/python benchmarks/bench_score.py

clean:
	rm -rf $(VENV) results $(PHANTOMS) .pytest_cache .hypothesis docs/_build
