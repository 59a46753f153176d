# The two commands of the README's quick start, and the benchmarks. Each sets itself up.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: setup tools test demo bench peers clean

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(INSTALLED)

setup: $(INSTALLED)

# Prometheus and Alertmanager (Debian's packages) for the rule tests and the end-to-end alerting test;
# Debian's fortunes in four languages: real text for the contamination and language tests; Chromium:
# the report's browser test.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
tools:
	@command -v promtool >/dev/null && command -v prometheus-alertmanager >/dev/null \
		&& command -v chromium >/dev/null && [ -d /usr/share/games/fortunes/ru ] || { \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			prometheus prometheus-alertmanager fortunes fortunes-de fortunes-es fortunes-ru chromium >/dev/null; }

test: setup tools
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy monitor tests benchmarks grafana deploy
	$(PY) -m pytest

demo: setup
	$(VENV)/bin/synthdrift demo

bench: setup
	$(PY) benchmarks/core.py
	$(PY) benchmarks/check.py
	$(PY) benchmarks/worker.py
	$(PY) benchmarks/scale.py
	$(PY) benchmarks/contamination.py

# synthdrift next to Evidently and NannyML on the same real data; each peer in its own venv (~3 GB).
peers: setup
	$(PY) benchmarks/peers.py

clean:
	rm -rf $(VENV) .demo .pytest_cache .hypothesis .mypy_cache .ruff_cache
