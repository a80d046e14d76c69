# edgeprune: `make demo` sets up .venv and runs the built-in default end to end;
# `make test` runs the quick test suite (`make test-all` every test). Both create the
# virtualenv if it is missing.

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# One make target per device profile, derived from the folder.
TARGETS := $(sort $(basename $(notdir $(wildcard targets/*.toml))))

.PHONY: demo test test-slow test-all lint bench bench-structured bench-latency-boards bench-sweep bench-trees campaign campaign-quick bad-inputs-doc clean help targets all-targets $(TARGETS)

help:
	@echo "make demo      set up $(VENV) and run the built-in default (digits CNN) end to end"
	@echo "make test      run the quick test suite (tests marked slow left out)"
	@echo "make test-slow run only the tests marked slow"
	@echo "make test-all  run every test (what .ci/run does)"
	@echo "make lint      ruff check and ruff format --check"
	@echo "make bench     time edgeprune against a plain tfmot + converter script"
	@echo "make bench-structured  structured pruning before/after on the reference models"
	@echo "make bench-sweep  the 40-trial sweep, its front vs run --structured fit, PostgreSQL scaling, trial overhead"
	@echo "make bench-trees  tree models on digits, breast cancer, wine: pruned vs unpruned, emlearn, scikit-learn ccp"
	@echo "make bench-latency-boards  latency estimates vs published results per board (held-out boards apart)"
	@echo "make campaign  throw issue 14's bad inputs and faults at the CLI ((a)-(f) ~12 min; campaign-quick ~5)"
	@echo "make bad-inputs-doc  regenerate docs/bad-inputs.md from tests/bad_inputs.py"
	@echo "make targets   list the device targets; make <target> builds build/<target>/"
	@echo "make all-targets  build every target and print a pass/fail table"
	@echo "make validate-<target>  run build/<target>'s model on its device (DEVICE=port|board)"

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

# Slow tests are deselected, not skipped: -rs then lists only real skips.
test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

test-all: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check edgeprune models tests benchmarks
	$(BIN)/ruff format --check edgeprune models tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_default.py

bench-structured: $(STAMP)
	$(BIN)/python benchmarks/bench_structured.py

# Exit 1 if a figure misses its target (README: "Sweep benchmark"); starts its own PostgreSQL.
bench-sweep: $(STAMP)
	$(BIN)/python benchmarks/bench_sweep.py

# Exit 1 if a target of issue 17 is missed (README: "Tree models"); the rows also go
# to build/bench_trees.json. Needs arm-none-eabi-gcc, gcc and qemu-system-arm.
bench-trees: $(STAMP)
	@mkdir -p build
	$(BIN)/python benchmarks/bench_trees.py --json build/bench_trees.json

# Exit 1 if a board misses its target (README: latency section of benchmarks/README.md).
bench-latency-boards: $(STAMP)
	$(BIN)/python benchmarks/bench_latency_boards.py

# Exit 1 if any case is not ok; the rows also go to build/campaign.json.
campaign: $(STAMP)
	@mkdir -p build
	$(BIN)/python benchmarks/campaign.py --json build/campaign.json

campaign-quick: $(STAMP)
	@mkdir -p build
	$(BIN)/python benchmarks/campaign.py --quick --json build/campaign-quick.json

bad-inputs-doc: $(STAMP)
	$(BIN)/python -m tests.bad_inputs > docs/bad-inputs.md

targets:
	@printf '%s\n' $(TARGETS)

# The built-in default for one device: the pipeline, the budget check and, for
# TFLite Micro devices, firmware/ in build/<target>/. Exit 3 if over budget.
$(TARGETS): $(STAMP)
	$(BIN)/edgeprune run --target $@ --out build/$@

# Validate what `make <target>` built: make validate-nano33ble [DEVICE=/dev/ttyACM0]
# (serial), make validate-rpi4 [DEVICE=pi@raspberrypi.local] (ssh), [RUNNER=...]
# [RECIPE=recipe.toml]. Without DEVICE the model runs here.
validate-%: $(STAMP)
	$(BIN)/edgeprune validate build/$* --target $* $(if $(RUNNER),--runner $(RUNNER)) \
		$(if $(DEVICE),--device $(DEVICE)) $(if $(RECIPE),--recipe $(RECIPE))

all-targets: $(STAMP)
	@mkdir -p build
	@for t in $(TARGETS); do \
		echo "building $$t"; \
		$(BIN)/edgeprune -q run --target $$t --out build/$$t > build/$$t.log 2>&1; \
		echo $$? > build/$$t.exit; \
	done
	@$(BIN)/edgeprune fleet build $(TARGETS)

clean:
	rm -rf build runs .pytest_cache
