# The README's two commands are the contract: `make demo` and `make test` work on a fresh
# machine with only Python and the package registry.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml setup.py pipeline/vascalc/core/_ckernel.c | sha256sum | cut -c1-12)
PHANTOMS := sample_data/phantoms

.PHONY: demo test venv sample-data bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml setup.py pipeline/vascalc/core/_ckernel.c
	$(BIN)/python -m pip install --quiet -e ".[test]"
	$(BIN)/python -m compileall -q pipeline/vascalc  # bytecode now: the first run starts as fast as later ones
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

venv: $(STAMP)

$(PHANTOMS)/manifest.csv: $(STAMP) sample_data/generate.py sample_data/phantom.py sample_data/dicom_writer.py
	$(BIN)/python -m sample_data.generate --out $(PHANTOMS)

sample-data: $(PHANTOMS)/manifest.csv

demo: $(PHANTOMS)/manifest.csv
	$(BIN)/vascalc run $(PHANTOMS)/manifest.csv --out results/demo --config configs/sample_data.yaml; \
	  status=$$?; echo ""; echo "Results are in results/demo: open results/demo/index.html (reports per case and per patient), or read scans.csv, regions.csv, regions_wide.csv, lesions.csv, data_dictionary.csv, run.json"; \
	  echo "To assign lesions to arteries in the browser: $(BIN)/vascalc review results/demo --reader YOURNAME"; \
	  exit $$status

test: $(STAMP)
	$(BIN)/python -m mypy
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_score.py

clean:
	rm -rf $(VENV) results $(PHANTOMS) .pytest_cache .hypothesis
