# headwater: `make demo` sets everything up and runs the demo estate into DuckDB
# (land, normalize, context, model); `make test` runs the whole suite. Both install
# into .venv from pyproject.toml, with every transitive version pinned by requirements.lock.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test lint bench clean

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev]'
	# The DB2 dialect alone, for the compiled-SQL tests: its driver dependency (ibm_db)
	# downloads a native client at build time, which an offline machine cannot do.
	$(BIN)/python -m pip install --quiet --no-deps ibm-db-sa==0.4.4
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/headwater demo

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python bench/sql_extract.py
	$(BIN)/python bench/odbc_extract.py
	$(BIN)/python bench/rest_extract.py
	$(BIN)/python bench/soap_extract.py
	$(BIN)/python bench/normalize.py
	$(BIN)/python bench/model_step.py

clean:
	rm -rf $(VENV) .headwater
