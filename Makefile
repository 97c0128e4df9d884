# headwater: `make demo` sets everything up and runs the demo estate into DuckDB
# (land, normalize, context, model); `make test` runs the whole suite. Both install
# into .venv from pyproject.toml, with every version pinned by requirements.lock:
# `demo` the runtime dependencies only, `test` the test tools as well.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# setuptools prints a 10-line notice on every editable install; it is about folders named
# like the packages shadowing them, which is what an editable checkout is for.
PIP    := PYTHONWARNINGS="ignore:Editable installation" $(BIN)/python -m pip install \
          --quiet -c requirements.lock
RUNTIME := $(VENV)/.installed-runtime
DEV     := $(VENV)/.installed-dev

.PHONY: install install-dev demo test lint bench reliability clean

$(RUNTIME): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(PIP) -e .
	touch $(RUNTIME)

$(DEV): $(RUNTIME)
	$(PIP) -e '.[dev]'
	# The DB2 dialect alone, for the compiled-SQL tests: its driver dependency (ibm_db)
	# downloads a native client at build time, which an offline machine cannot do.
	$(BIN)/python -m pip install --quiet --no-deps ibm-db-sa==0.4.4
	touch $(DEV)

install: $(RUNTIME)

install-dev: $(DEV)

demo: $(RUNTIME)
	$(BIN)/headwater demo

test: $(DEV)
	$(BIN)/python -m pytest

lint: $(DEV)
	$(BIN)/ruff check .

bench: $(DEV)
	$(BIN)/python bench/startup.py
	$(BIN)/python bench/sql_extract.py
	$(BIN)/python bench/odbc_extract.py
	$(BIN)/python bench/rest_extract.py
	$(BIN)/python bench/soap_extract.py
	$(BIN)/python bench/normalize.py
	$(BIN)/python bench/downstream.py
	$(BIN)/python bench/model_step.py
	$(BIN)/python bench/scale_out.py

# The reliability tests (crash matrix, concurrent runs, hostile inputs, secrets scan,
# deadlines) record their figures; RELIABILITY.md is rendered from those records.
reliability: $(DEV)
	rm -rf test-artifacts/reliability
	$(BIN)/python -m pytest -m reliability
	$(BIN)/python -m tests.reliability_report

clean:
	rm -rf $(VENV) .headwater
