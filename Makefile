# The two commands of the README's quick start, and the benchmarks. Each sets itself up.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: setup test demo bench clean

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(INSTALLED)

setup: $(INSTALLED)

test: setup
	$(PY) -m pytest

demo: setup
	$(VENV)/bin/synthdrift demo

bench: setup
	$(PY) benchmarks/core.py
	$(PY) benchmarks/worker.py

clean:
	rm -rf $(VENV) .demo .pytest_cache .hypothesis
