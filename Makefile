# edgeprune: `make demo` sets up .venv and runs the built-in default end to end;
# `make test` runs the test suite. Both create the virtualenv if it is missing.

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-slow lint bench clean help

help:
	@echo "make demo      set up $(VENV) and run the built-in default (digits CNN) end to end"
	@echo "make test      run the test suite"
	@echo "make test-slow run the test suite including slow tests"
	@echo "make lint      ruff"
	@echo "make bench     time edgeprune against a plain tfmot + converter script"

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else \
		"edgeprune needs Python 3.11; found " + sys.version.split()[0] + \
		" (set PYTHON=/path/to/python3.11)")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/edgeprune run

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	EDGEPRUNE_SLOW=1 $(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check edgeprune models tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_default.py

clean:
	rm -rf build runs .pytest_cache
