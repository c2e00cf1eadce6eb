# cctasks: `make up` runs the embedded contact centre, `make test` runs the tests.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1

.PHONY: install up test bench lint screenshots clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

up: install
	$(VENV)/bin/cctasks up

test: install
	$(PY) -m pytest

BENCHES ?= list_import exclusion_import results_export tasklog_query parse_phones dedup_keys \
	bulk_write

bench: install
	for b in $(BENCHES); do $(PY) -m bench.$$b || exit 1; done

# The UI tests on a fresh demo stack; each saves the page it checked into docs/images.
screenshots: install
	CCTASKS_SCREENSHOTS_DIR=$(CURDIR)/docs/images $(PY) -m pytest -p no:cacheprovider -m ui tests/ui

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy contact_center blocks flows runlog tasklog cli deployments
	$(VENV)/bin/lint-imports

clean:
	rm -rf $(VENV) .cctasks *.egg-info
