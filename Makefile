# Developer entry points. Everything runs inside .venv, made with the system python3.
#   make demo   install what the README's session uses and run the short example
#   make test   install with the dev extras, build the docs and run the test suite
#   make docs   build the docs site into site/ (mkdocs, warnings are errors)
#   make bench  run the benchmarks
#   make lint   ruff (lint + format check) and mypy

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

# The real MNIST lives next to the repository in CI and on dev machines; tests use
# it when present (an explicit GN_DATA_DIR from the environment wins).
SHARED_DATA := $(wildcard $(CURDIR)/../shared/data)
GN_DATA_DIR ?= $(if $(SHARED_DATA),$(abspath $(SHARED_DATA)))

# Stamps record what was installed, so repeated runs skip pip until pyproject.toml changes.
STAMP_BASE := $(VENV)/.installed
STAMP_DEMO := $(VENV)/.installed-demo
STAMP_DEV := $(VENV)/.installed-dev
STAMP_DOCS := $(VENV)/.installed-docs

# mkdocs 1.x prints a banner about its successor on every build; it is not a warning.
MKDOCS := NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs

.PHONY: demo test bench lint venv docs docs-serve

# The demo is its own experiment, so it runs beside an IPython session working on
# "default" in the same workspace. Offline, without ../shared/data, it trains on
# the bundled MNIST subset.
demo: $(STAMP_DEMO)
	$(if $(GN_DATA_DIR),GN_DATA_DIR='$(GN_DATA_DIR)') $(PY) -m galapagos_nao --experiment demo
	@echo
	@echo "Next: $(VENV)/bin/ipython   (then: import galapagos_nao as gn; gn?)"

test: $(STAMP_DEV) docs
	$(if $(GN_DATA_DIR),GN_DATA_DIR='$(GN_DATA_DIR)') $(PY) -m pytest $(PYTEST_ARGS)

bench: $(STAMP_BASE)
	$(PY) -m benchmarks

lint: $(STAMP_DEV)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy galapagos_nao gn

# The site goes to site/ (git-ignored); --strict turns every warning into an error.
docs: $(STAMP_DOCS)
	$(MKDOCS) build --strict --site-dir site

docs-serve: $(STAMP_DOCS)
	$(MKDOCS) serve

venv: $(PY)

$(PY):
	$(PYTHON) -m venv $(VENV)

# The venv's python is an order-only prerequisite: its timestamp must not force reinstalls.
$(STAMP_BASE): pyproject.toml | $(PY)
	$(PIP) install --quiet -e .
	@touch $@

# What the README's session uses: IPython, plots and progress bars, the watch dashboard.
$(STAMP_DEMO): pyproject.toml | $(PY)
	$(PIP) install --quiet -e '.[ipython,plot,watch]'
	@touch $@ $(STAMP_BASE)

# Ray and onnxruntime do not publish wheels for every platform and Python; without
# them the suite still runs and the tests that need them skip with a reason.
$(STAMP_DEV): pyproject.toml | $(PY)
	@if $(PIP) install --quiet -e '.[dev,ray,onnx]'; then :; else \
		echo "note: installing the ray/onnx extras failed (no wheel for this platform?);" \
			"installing '.[dev]' only -- tests that need them will be skipped"; \
		$(PIP) install --quiet -e '.[dev]'; \
	fi
	@touch $@ $(STAMP_BASE) $(STAMP_DEMO)

$(STAMP_DOCS): pyproject.toml | $(PY)
	$(PIP) install --quiet -e '.[docs]'
	@touch $@ $(STAMP_BASE)
