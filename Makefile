# jwst-widgets: the two commands of the README, and what stands behind them.
#   make lab    set up (once) and open JupyterLab on the pipeline builder
#   make test   set up (once) and run every test
# Everything lives in .venv inside the checkout; nothing else is needed on the
# machine but Python 3.10+ (and root or sudo for Debian's Chromium, used by the
# browser tests).

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
PORT   ?= 8888
PYTEST_ARGS ?=
# JupyterLab refuses to run as root unless told to (containers, Binder-like machines)
ROOT_FLAG = $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: lab test test-fast browser-deps benchmarks voila clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-user: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[all]"
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(VENV)/.installed-user $@

lab: $(VENV)/.installed-user
	$(BIN)/python -m jwst_widgets.datasets.prepare
	-$(BIN)/python -m jwst_widgets.aladin_offline fetch
	$(BIN)/jupyter lab --ServerApp.ip=127.0.0.1 --ServerApp.port=$(PORT) $(ROOT_FLAG) \
	    --ServerApp.root_dir=$(CURDIR) notebooks/pipeline_builder.ipynb

voila: $(VENV)/.installed-user
	$(BIN)/python -m jwst_widgets.datasets.prepare
	$(BIN)/voila notebooks/pipeline_builder.ipynb --Voila.ip=127.0.0.1 --port=$(PORT)

browser-deps:
	@sh scripts/install-chromium.sh

test: $(VENV)/.installed-test browser-deps
	-$(BIN)/python -m jwst_widgets.aladin_offline fetch
	$(BIN)/python -m pytest --nbval-lax $(PYTEST_ARGS)

test-fast: $(VENV)/.installed-test
	$(BIN)/python -m pytest -m "not browser and not slow" $(PYTEST_ARGS) tests

benchmarks: $(VENV)/.installed-test
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache tests/browser/artifacts
