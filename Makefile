# Two commands a newcomer runs on a fresh machine; each creates the virtual environment it needs.
#   make demo   collect Two-Room data, train the CPU preset, plan to goal images, report (<= 20 min)
#   make test   the fast test suite (CPU only)
VENV ?= .venv
PYTHON ?= python3
TORCH_VERSION ?= 2.13.0
OUT ?= runs/demo

.PHONY: install demo demo-quick test test-all lint clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	# Pin torch first: on this project's machines 2.13.0 is a local CPU wheel; an unpinned
	# torch would pull a multi-GB CUDA build.
	$(VENV)/bin/pip install -q torch==$(TORCH_VERSION)
	$(VENV)/bin/pip install -q -e ".[dev]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/lewm demo --out $(OUT)

demo-quick: install
	$(VENV)/bin/lewm demo --quick --out runs/demo-quick

test: install
	$(VENV)/bin/pytest -m "not slow" -q

test-all: install
	$(VENV)/bin/pytest -q

lint: install
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache
