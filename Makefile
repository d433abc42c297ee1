# The README's set-up commands: `make test` (the fast gate), `make test-all`, `make docs`, `make dist` (the release).
# Everything lives in .venv/ at the repo root; nothing is installed outside it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: all dist test test-all docs install bench clean

all: test

$(STAMP): requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

# Build cyfes (GPU backend too when a CUDA compiler is found) and install it into .venv.
install: $(STAMP)
	$(PY) -m pip install -q --no-build-isolation --no-deps --force-reinstall . -Cbuild-dir=build/dev

# The gate CI runs: every test but the release and slow ones; the 15 slowest are listed at the end.
test: install
	$(PY) -m pytest --durations=15 tests

# Every test but the release ones (which need dist/): the slow builds from source and fuzz runs too.
test-all: install
	$(PY) -m pytest --durations=15 -m 'not release' tests

# The documentation site (Sphinx) in docs/_build/html; warnings are errors.
docs: install
	$(PY) -m sphinx -W --keep-going -b html docs docs/_build/html

# The release: an sdist, verified wheels and conda packages in dist/ (see release.yaml), then the checks that need
# them (pytest -m release). Reproducible: every archive carries the last commit's time unless SOURCE_DATE_EPOCH says
# otherwise.
dist: export SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null)
dist: install
	$(PY) -m tools.release
	$(PY) -m pytest -m release tests
	$(PY) -m pytest --durations=15 -m 'slow and not release' tests

bench: install
	$(PY) bench/bench_fes.py

clean:
	rm -rf build dist docs/_build docs/generated
